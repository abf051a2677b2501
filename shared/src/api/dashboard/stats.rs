//! `GET /dashboard/stats`: review statistics (`GET /v1/stats/approvals`) as a page: a bar chart
//! of each group's decisions stacked by outcome, drawn on the server as inline SVG (no script, no
//! inline style: the strict CSP stays), and a table with the rubber-stamp flag.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::auth::Reviewer;
use super::form::Form;
use super::page::{html, Reply};
use super::views::{Choice, Chrome};
use crate::api::AppState;
use crate::domain::decision_stats::{parse_instant, GroupBy, GroupStats};
use crate::error::AppError;
use crate::service::ApprovalStats;

/// The chart's geometry (SVG user units).
const LABEL_WIDTH: u32 = 220;
/// Characters of a bar's label that fit in `LABEL_WIDTH` at its font size.
const LABEL_CHARS: usize = 26;
const BAR_AREA: u32 = 460;
const ROW_HEIGHT: u32 = 30;
const BAR_HEIGHT: u32 = 20;
const TOP: u32 = 34;
/// The most groups drawn (the table lists them all).
const MAX_BARS: usize = 25;

/// Outcomes in stacking order, with their colours and names.
const OUTCOMES: [(&str, &str); 5] = [
    ("approved", "#12b76a"),
    ("modified", "#2e90fa"),
    ("rejected", "#f04438"),
    ("escalated", "#f79009"),
    ("expired", "#98a2b3"),
];

pub struct StatsRow {
    pub key: String,
    pub name: String,
    pub decided: u64,
    pub approved: u64,
    pub rejected: u64,
    pub modified: u64,
    pub expired: u64,
    pub escalated: u64,
    pub median: String,
    pub p90: String,
    pub rubber_stamp: bool,
}

pub struct Segment {
    pub x: u32,
    pub width: u32,
    pub fill: &'static str,
    pub title: String,
}

pub struct Bar {
    pub label: String,
    pub y: u32,
    pub text_y: u32,
    pub segments: Vec<Segment>,
    pub total: u64,
    pub total_x: u32,
    pub rubber_stamp: bool,
}

pub struct Legend {
    pub x: u32,
    pub fill: &'static str,
    pub name: &'static str,
}

#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    pub chrome: Chrome,
    pub groupings: Vec<Choice>,
    pub grouped_by: &'static str,
    pub since: String,
    pub until: String,
    pub window: String,
    pub rows: Vec<StatsRow>,
    pub bars: Vec<Bar>,
    pub legend: Vec<Legend>,
    pub width: u32,
    pub height: u32,
    pub label_width: u32,
    pub bar_height: u32,
    pub more: usize,
}

fn grouping_name(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Team => "team",
        GroupBy::Reviewer => "reviewer",
        GroupBy::Agent => "agent",
    }
}

/// Seconds as a reviewer reads them: hundredths below 10 s (where the rubber stamp is decided).
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// A bar's label: the group's name, else its key; cut to fit beside the bar (the table has both).
fn bar_label(g: &GroupStats) -> String {
    let label = g.name.clone().unwrap_or_else(|| g.key.clone());
    if label.chars().count() > LABEL_CHARS {
        label.chars().take(LABEL_CHARS - 1).collect::<String>() + "…"
    } else {
        label
    }
}

fn bars(groups: &[GroupStats]) -> Vec<Bar> {
    let most = groups.iter().map(|g| g.decided).max().unwrap_or(0).max(1);
    let scale = |n: u64| u32::try_from(n * u64::from(BAR_AREA) / most).unwrap_or(BAR_AREA);
    groups
        .iter()
        .take(MAX_BARS)
        .zip(0u32..)
        .map(|(g, i)| {
            let y = TOP + i * ROW_HEIGHT;
            let mut x = LABEL_WIDTH;
            let mut done = 0;
            let mut segments = Vec::new();
            for (name, fill) in OUTCOMES {
                let n = match name {
                    "approved" => g.approved,
                    "modified" => g.modified,
                    "rejected" => g.rejected,
                    "escalated" => g.escalated,
                    _ => g.expired,
                };
                if n == 0 {
                    continue;
                }
                // Edges from the running total, so the segments add up to the bar exactly.
                let end = LABEL_WIDTH + scale(done + n);
                segments.push(Segment { x, width: end - x, fill, title: format!("{n} {name}") });
                x = end;
                done += n;
            }
            Bar {
                label: bar_label(g),
                y,
                text_y: y + BAR_HEIGHT / 2 + 5,
                segments,
                total: g.decided,
                total_x: x + 6,
                rubber_stamp: g.rubber_stamp,
            }
        })
        .collect()
}

fn page(chrome: Chrome, stats: ApprovalStats, since: String, until: String) -> StatsPage {
    let legend = OUTCOMES.iter().zip(0u32..).map(|((name, fill), i)| Legend { x: i * 110, fill, name }).collect();
    let bars = bars(&stats.groups);
    let height = TOP + u32::try_from(bars.len()).unwrap_or(0) * ROW_HEIGHT + 6;
    let rows = stats
        .groups
        .iter()
        .map(|g| StatsRow {
            key: g.key.clone(),
            name: g.name.clone().unwrap_or_default(),
            decided: g.decided,
            approved: g.approved,
            rejected: g.rejected,
            modified: g.modified,
            expired: g.expired,
            escalated: g.escalated,
            median: seconds(g.median_seconds),
            p90: seconds(g.p90_seconds),
            rubber_stamp: g.rubber_stamp,
        })
        .collect();
    StatsPage {
        chrome,
        groupings: [GroupBy::Reviewer, GroupBy::Team, GroupBy::Agent]
            .into_iter()
            .map(|by| Choice {
                value: grouping_name(by).into(),
                label: format!("By {}", grouping_name(by)),
                selected: by == stats.group_by,
            })
            .collect(),
        grouped_by: grouping_name(stats.group_by),
        since,
        until,
        window: format!("{} to {} (UTC)", stats.since.format("%Y-%m-%d %H:%M"), stats.until.format("%Y-%m-%d %H:%M")),
        more: stats.groups.len().saturating_sub(MAX_BARS),
        rows,
        bars,
        legend,
        width: LABEL_WIDTH + BAR_AREA + 60,
        height,
        label_width: LABEL_WIDTH - 8,
        bar_height: BAR_HEIGHT,
    }
}

/// `?groupBy=reviewer|team|agent&since=&until=` (dates or RFC 3339 times, as the API takes them);
/// grouped by reviewer unless asked otherwise. Bad input is a readable 400 page.
pub async fn show(State(s): State<AppState>, reviewer: Reviewer, RawQuery(query): RawQuery) -> Reply {
    let fields = Form::parse(query.unwrap_or_default().as_bytes())?;
    let by = fields.get("groupBy").map(GroupBy::parse).transpose().map_err(AppError::from)?;
    let since = fields.get("since").map(|t| parse_instant("since", t)).transpose().map_err(AppError::from)?;
    let until = fields.get("until").map(|t| parse_instant("until", t)).transpose().map_err(AppError::from)?;
    let stats = s.approval_stats(reviewer.caller(), since, until, by.unwrap_or(GroupBy::Reviewer)).await?;
    let (since, until) = (fields.get("since").unwrap_or("").to_string(), fields.get("until").unwrap_or("").to_string());
    Ok(html(StatusCode::OK, &page(reviewer.chrome(), stats, since, until)))
}
