//! Results of a conformance run, and the truth tables printed for a failed probe step, as
//! upstream's suite prints them: one row per source, one column per destination, `.` for
//! connected, `X` for blocked, `-` for a pair not probed; a cell where the judges disagree
//! is marked with `!` after it.

use palisade_model::Protocol;
use serde::Serialize;

/// What the three judges said about one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub from: String,
    pub to: String,
    pub expected: bool,
    pub engine: bool,
    /// The probe's first packet traced through the node table Palisade renders for the
    /// case's model (every pod local): checked even where the network cannot be probed.
    pub rules: bool,
    /// `None`: not probed on the network (the kernel has no sockets of that protocol).
    pub network: Option<bool>,
}

impl ProbeResult {
    pub fn agrees(&self) -> bool {
        self.engine == self.expected && self.rules == self.expected && self.network.is_none_or(|n| n == self.expected)
    }
}

/// One probe step of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub step: usize,
    pub port: u16,
    pub protocol: Protocol,
    pub probes: Vec<ProbeResult>,
    /// Why the network was not probed, if it was not.
    pub skipped: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub seconds: f64,
    pub steps: Vec<StepResult>,
    /// Why the case failed before probing, or was skipped.
    pub reason: Option<String>,
}

impl CaseResult {
    pub fn from_steps(id: &str, title: &str, steps: Vec<StepResult>, seconds: f64) -> Self {
        let status = if steps.iter().all(|s| s.probes.iter().all(ProbeResult::agrees)) { Status::Pass } else { Status::Fail };
        Self { id: id.into(), title: title.into(), status, seconds, steps, reason: None }
    }
}

fn cell(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => ".",
        Some(false) => "X",
        None => "?",
    }
}

/// One truth table: `pick` chooses the judge; cells that differ from the expectation are
/// marked.
fn table(step: &StepResult, title: &str, pick: impl Fn(&ProbeResult) -> Option<bool>) -> String {
    let mut pods: Vec<&str> = step.probes.iter().flat_map(|p| [p.from.as_str(), p.to.as_str()]).collect();
    pods.sort_unstable();
    pods.dedup();
    let width = pods.iter().map(|p| p.len()).max().unwrap_or(1).max(7) + 1;
    let mut out = format!("{title}:\n{:<width$}", "from\\to");
    for to in &pods {
        out += &format!("{to:<width$}");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for from in &pods {
        out += &format!("{from:<width$}");
        for to in &pods {
            let text = match step.probes.iter().find(|p| p.from == *from && p.to == *to) {
                None => "-".to_string(),
                Some(p) => {
                    let value = pick(p);
                    let differs = value.is_some_and(|v| v != p.expected);
                    format!("{}{}", cell(value), if differs { "!" } else { "" })
                }
            };
            out += &format!("{text:<width$}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// The three tables of a step whose judges disagree (`!` marks the cells that differ from
/// the expectation), and the rendered rules' when they differ too.
pub fn truth_tables(step: &StepResult) -> String {
    let mut out = format!("step {} ({}/{}):\n", step.step, step.port, step.protocol);
    out += &table(step, "expected", |p| Some(p.expected));
    out += &table(step, "engine", |p| Some(p.engine));
    if step.probes.iter().any(|p| p.rules != p.expected) {
        out += &table(step, "rendered rules", |p| Some(p.rules));
    }
    out += &table(step, "network", |p| p.network);
    if let Some(why) = &step.skipped {
        out += &format!("network not probed: {why}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_mark_the_cells_that_differ() {
        let probe = |from: &str, to: &str, expected, engine, network| ProbeResult { from: from.into(), to: to.into(), expected, engine, rules: engine, network };
        let step = StepResult { step: 1, port: 80, protocol: Protocol::Tcp, probes: vec![probe("x/a", "x/b", false, false, Some(true)), probe("x/b", "x/a", true, true, Some(true))], skipped: None };
        let text = truth_tables(&step);
        assert!(text.contains("network:\nfrom\\to x/a     x/b\nx/a     -       .!\nx/b     .       -\n"), "{text}");
        assert!(text.contains("engine:\nfrom\\to x/a     x/b\nx/a     -       X\n"), "{text}");
        let result = CaseResult::from_steps("c", "t", vec![step.clone()], 0.5);
        assert_eq!(result.status, Status::Fail);
        assert!(probe("a/a", "a/b", true, true, None).agrees());
        assert!(!text.contains("rendered rules"), "{text}");
        let mut wrong_rule = step.clone();
        wrong_rule.probes[1].rules = false;
        assert!(truth_tables(&wrong_rule).contains("rendered rules:\nfrom\\to x/a     x/b\nx/a     -       X\nx/b     X!"), "{}", truth_tables(&wrong_rule));
        assert!(!wrong_rule.probes[1].agrees());
    }
}
