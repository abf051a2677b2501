//! Cursor pagination: `?limit=&cursor=` in, `{data, hasMore, nextCursor}` out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::UseCases;
use crate::domain::input::InputError;
use crate::error::{AppError, AppResult};
use crate::layout::{decode, Record};
use crate::ports::{Position, Query};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// Store reads one filtered page may take before it returns what it has.
const MAX_READS_PER_PAGE: usize = 10;

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<Position>,
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> AppResult<Self> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(
                        InputError::invalid("limit", format!("must be a whole number from 1 to {MAX_LIMIT}")).into()
                    )
                }
            },
        };
        let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

fn invalid_cursor() -> AppError {
    InputError::invalid("cursor", "is not a cursor this API returned").into()
}

fn decode_cursor(text: &str) -> AppResult<Position> {
    if text.len() > 1024 {
        return Err(invalid_cursor());
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid_cursor())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid_cursor())
}

fn encode_cursor(position: &Position) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { data: self.data.into_iter().map(f).collect(), has_more: self.has_more, next_cursor: self.next_cursor }
    }
}

impl UseCases {
    /// Reads one page of `query`'s partition, keeping records that pass `keep`.
    pub(crate) async fn page<R: Record>(
        &self,
        mut query: Query,
        request: &PageRequest,
        keep: impl Fn(&R) -> bool,
    ) -> AppResult<Page<R>> {
        let want = request.limit + 1; // one extra tells whether there is more
        let mut found: Vec<(Position, R)> = Vec::new();
        let mut after = request.after.clone();
        let mut exhausted = false;
        'reads: for _ in 0..MAX_READS_PER_PAGE {
            query.after = after.clone();
            query.limit = want;
            // A cursor the store did not issue becomes a `cursor` input error (`AppError::from`).
            let items = self.store().query(query.clone()).await?;
            let read = items.len();
            for item in items {
                let position = item.position(query.index);
                let record = decode::<R>(item)?.value;
                after = Some(position.clone());
                if keep(&record) {
                    found.push((position, record));
                    if found.len() == want {
                        break 'reads;
                    }
                }
            }
            if read < want {
                exhausted = true;
                break;
            }
        }
        let next = if found.len() > request.limit {
            found.truncate(request.limit);
            found.last().map(|(p, _)| p.clone())
        } else if !exhausted {
            after // ran out of reads mid-partition: continue after the last record examined
        } else {
            None
        };
        let has_more = next.is_some();
        let next_cursor = next.as_ref().map(encode_cursor);
        Ok(Page { data: found.into_iter().map(|(_, r)| r).collect(), has_more, next_cursor })
    }
}
