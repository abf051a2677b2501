//! Figures as the benchmarks measure them: printed at once, and written as tab-separated rows
//! (`section, figure, value, unit, target, floor name, floor value`) for `bench/report.py`,
//! which puts every figure beside its floor in bench/RESULTS.md.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

pub struct Figure {
    pub section: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: &'static str,
    /// What this figure cannot beat (or should be read against), and its value in the same unit.
    pub floor: Option<(String, f64)>,
}

#[derive(Default)]
pub struct Figures {
    rows: Mutex<Vec<Figure>>,
}

impl Figures {
    pub fn add(&self, figure: Figure) {
        let floor = match &figure.floor {
            Some((name, value)) => format!("   [floor {name}: {}]", show(*value)),
            None => String::new(),
        };
        let target = if figure.target.is_empty() { String::new() } else { format!("   (target {})", figure.target) };
        println!("{:<52} {:>10} {:<8}{target}{floor}", figure.name, show(figure.value), figure.unit);
        self.rows.lock().expect("figures").push(figure);
    }

    /// A figure without target or floor.
    pub fn plain(&self, section: &'static str, name: impl Into<String>, value: f64, unit: &'static str) {
        self.add(Figure { section, name: name.into(), value, unit, target: "", floor: None });
    }

    pub fn write_tsv(&self, path: &str) -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        for f in self.rows.lock().expect("figures").iter() {
            let (floor_name, floor_value) = match &f.floor {
                Some((n, v)) => (n.as_str(), v.to_string()),
                None => ("", String::new()),
            };
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                f.section, f.name, f.value, f.unit, f.target, floor_name, floor_value
            )?;
        }
        Ok(())
    }
}

pub fn show(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Latencies of one run: sorted, with the wall time they took.
pub struct Run {
    pub sorted: Vec<Duration>,
    pub wall: Duration,
    pub server_errors: usize,
}

impl Run {
    pub fn new(mut latencies: Vec<Duration>, wall: Duration, server_errors: usize) -> Self {
        latencies.sort();
        Run { sorted: latencies, wall, server_errors }
    }

    pub fn rate(&self) -> f64 {
        self.sorted.len() as f64 / self.wall.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.sorted.len() as f64 - 1.0) * p).round() as usize;
        self.sorted[idx.min(self.sorted.len() - 1)]
    }

    pub fn p50(&self) -> f64 {
        ms(self.percentile(0.50))
    }

    pub fn p99(&self) -> f64 {
        ms(self.percentile(0.99))
    }
}
