//! The run's report: text (a line per case as it finishes, the three truth tables of a
//! failed step, the closing count), JSON, or JUnit XML for CI systems.

use std::io::IsTerminal;

use palisade_conformance::file::FileCase;
use palisade_conformance::report::{CaseResult, Status, truth_tables};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

/// A progress line on a terminal (overwritten by the next).
pub fn progress(index: usize, total: usize, case: &FileCase) {
    if std::io::stderr().is_terminal() {
        let done = index * 30 / total.max(1);
        eprint!("\r\x1b[K[{}{}] {index}/{total} {}", "#".repeat(done), " ".repeat(30 - done), case.id);
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
    }
}

/// In text mode, each case's line as soon as it is known.
pub fn case_done(format: Format, result: &CaseResult) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    if format == Format::Text {
        println!("{}", case_text(result));
    }
}

fn case_text(result: &CaseResult) -> String {
    let mut text = format!("{} {} {} ({:.1} s)", word(result.status), result.id, result.title, result.seconds);
    if let Some(reason) = &result.reason {
        text += &format!("\n    {reason}");
    }
    let skipped: Vec<&str> = result.steps.iter().filter_map(|s| s.skipped.as_deref()).collect();
    if let Some(why) = skipped.first() {
        text += &format!("\n    network not probed for {} step(s): {why} (engine checked)", skipped.len());
    }
    if result.status == Status::Fail {
        for step in result.steps.iter().filter(|s| s.probes.iter().any(|p| !p.agrees())) {
            text += "\n";
            text += &truth_tables(step).lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n");
        }
    }
    text
}

fn counts(results: &[CaseResult]) -> String {
    let count = |status| results.iter().filter(|r| r.status == status).count();
    format!("{} passed, {} failed, {} skipped", count(Status::Pass), count(Status::Fail), count(Status::Skip))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report in `format` (text: the closing line only, the cases were printed as they ran).
pub fn render(format: Format, results: &[CaseResult]) -> String {
    match format {
        Format::Text => format!("{}\n", counts(results)),
        Format::Json => {
            let value = serde_json::json!({"summary": counts(results), "cases": results});
            format!("{}\n", serde_json::to_string_pretty(&value).expect("results serialize"))
        }
        Format::Junit => {
            let count = |status| results.iter().filter(|r| r.status == status).count();
            let total: f64 = results.iter().map(|r| r.seconds).sum();
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"palisade conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{total:.3}\">\n",
                results.len(),
                count(Status::Fail),
                count(Status::Skip)
            );
            for result in results {
                xml += &format!("  <testcase classname=\"netpol\" name=\"{}\" time=\"{:.3}\"", xml_escape(&format!("{} {}", result.id, result.title)), result.seconds);
                match result.status {
                    Status::Pass => xml += "/>\n",
                    Status::Skip => xml += &format!("><skipped message=\"{}\"/></testcase>\n", xml_escape(result.reason.as_deref().unwrap_or(""))),
                    Status::Fail => {
                        xml += &format!("><failure message=\"{}\">{}</failure></testcase>\n", xml_escape(result.reason.as_deref().unwrap_or("probes disagree")), xml_escape(&case_text(result)))
                    }
                }
            }
            xml + "</testsuite>\n"
        }
    }
}
