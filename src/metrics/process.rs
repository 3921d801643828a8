//! The standard `process_*` metrics (CPU, memory, file descriptors, start time), read from
//! `/proc/self` on each scrape.
//!
//! Only `/proc/self` is read: the unit's `ProcSubset=pid` hides `/proc/stat` and
//! `/proc/uptime`, so the start time is taken when the collector is made (at start-up)
//! rather than derived from the boot time. On a system without `/proc` the collector
//! exports nothing instead of failing the scrape.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub(crate) struct ProcessCollector {
    start_time: f64,
    page_size: f64,
    ticks_per_second: f64,
}

impl ProcessCollector {
    pub(crate) fn new() -> Self {
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // SAFETY: sysconf only reads system constants.
        let (page_size, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        Self {
            start_time,
            page_size: if page_size > 0 {
                page_size as f64
            } else {
                4096.0
            },
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }
}

/// What one scrape reads from `/proc/self`.
#[derive(Debug, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
fn parse_stat(stat: &str, page_size: f64, ticks_per_second: f64) -> Option<Sample> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, so field N is fields[N - 3].
    let num = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Sample {
        cpu_seconds: (num(14)? + num(15)?) / ticks_per_second,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page_size,
    })
}

fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64| {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            self.start_time,
        )?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let Some(sample) = stat
            .as_deref()
            .and_then(|s| parse_stat(s, self.page_size, self.ticks_per_second))
        {
            let cpu = ConstCounter::new(sample.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                fds.count() as f64,
            )?;
        }
        if let Some(max) = max_open_files() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis must not shift the fields.
        let stat = "4242 (pcs (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    3 0 12345 104857600 2560 18446744073709551615";
        let sample = parse_stat(stat, 4096.0, 100.0).expect("parses");
        assert_eq!(
            sample,
            Sample {
                cpu_seconds: 3.0,
                virtual_bytes: 104_857_600.0,
                resident_bytes: 2560.0 * 4096.0,
            }
        );
    }

    #[test]
    fn a_truncated_stat_line_yields_nothing() {
        assert_eq!(parse_stat("1 (x) S 1 2", 4096.0, 100.0), None);
    }

    #[test]
    fn the_live_process_reports_memory_and_descriptors() {
        let mut out = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector::new()));
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(out.contains(name), "{name} missing from:\n{out}");
        }
    }
}
