//! The run's report: text for the terminal, JUnit XML for CI, and one self-contained HTML page
//! (no scripts, no external files) showing each case, and for each failure the expectation
//! that broke, the messages the suite exchanged and the target's own message journal.

use std::fmt::Write as _;
use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use yibao_proto::admin::v1 as admin;

use crate::Role;
use crate::exchange::Exchange;

/// What became of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "UPPERCASE")]
pub enum CaseOutcome {
    /// Every expectation held.
    Pass,
    /// An expectation broke.
    Fail {
        /// What was expected.
        expected: String,
        /// What the target did.
        observed: String,
    },
    /// The case could not run against this target.
    Skip(String),
}

impl CaseOutcome {
    /// PASS, FAIL or SKIP.
    #[must_use]
    pub fn word(&self) -> &'static str {
        match self {
            CaseOutcome::Pass => "PASS",
            CaseOutcome::Fail { .. } => "FAIL",
            CaseOutcome::Skip(_) => "SKIP",
        }
    }
}

/// One line of the target's message journal (yibao's AdminService.GetMessageJournal).
#[derive(Clone, Debug, Serialize)]
pub struct JournalLine {
    /// When, as the target's clock said.
    pub at: String,
    /// Sent or received by the target.
    pub way: String,
    /// The message kind.
    pub kind: String,
    /// The msgid.
    pub msgid: String,
    /// The transfer.
    pub transfer_id: String,
    /// The attempt.
    pub attempt: u32,
    /// What came of it.
    pub outcome: String,
    /// The fault a rule injected.
    pub fault: String,
}

impl JournalLine {
    /// A journal entry as the report shows it.
    #[must_use]
    pub fn from_entry(entry: &admin::MessageJournalEntry) -> Self {
        let at = entry
            .at
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            .unwrap_or_default();
        JournalLine {
            at,
            way: admin::MessageWay::try_from(entry.way)
                .map_or("?", |w| match w {
                    admin::MessageWay::Sent => "sent",
                    admin::MessageWay::Received => "received",
                    admin::MessageWay::Unspecified => "?",
                })
                .to_owned(),
            kind: entry.kind.clone(),
            msgid: entry.msgid.clone(),
            transfer_id: entry.transfer_id.clone(),
            attempt: entry.attempt,
            outcome: entry.outcome.clone(),
            fault: entry.fault.clone(),
        }
    }
}

/// One case's result.
#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    /// Its name.
    pub name: &'static str,
    /// What it checks.
    pub expectation: &'static str,
    /// What became of it.
    pub outcome: CaseOutcome,
    /// How long it took.
    pub seconds: f64,
    /// The transfers it touched.
    pub transfers: Vec<String>,
    /// The platform messages of those transfers, as the suite sent and received them.
    pub exchanges: Vec<Exchange>,
    /// The target's own journal of those transfers (failing cases, targets with the admin API).
    pub target_journal: Vec<JournalLine>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The target's role.
    pub role: Role,
    /// The target's platform endpoint.
    pub target: String,
    /// Where the suite listened.
    pub listen: SocketAddr,
    /// The population seed.
    pub seed: u64,
    /// The first person per flow (`--first-person` reproduces the run).
    pub first_person: u64,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// The cases, in the order they ran.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// How many cases ended each way: (pass, fail, skip).
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |word: &str| {
            self.cases
                .iter()
                .filter(|c| c.outcome.word() == word)
                .count()
        };
        (count("PASS"), count("FAIL"), count("SKIP"))
    }

    /// Whether no case failed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.counts().1 == 0
    }

    /// The terminal report.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = format!(
            "yibao conformance: a {} bureau at {} (the suite plays {} on {}; seed {}, --first-person {})\n\n",
            self.role.name(),
            self.target,
            self.role.other().name(),
            self.listen,
            self.seed,
            self.first_person
        );
        for case in &self.cases {
            let _ = writeln!(
                out,
                "{} {:<34} {:>6.1} s",
                case.outcome.word(),
                case.name,
                case.seconds
            );
            match &case.outcome {
                CaseOutcome::Pass => {}
                CaseOutcome::Skip(reason) => {
                    let _ = writeln!(out, "     {reason}");
                }
                CaseOutcome::Fail { expected, observed } => {
                    let _ = writeln!(out, "     expected: {expected}\n     observed: {observed}");
                    if !case.exchanges.is_empty() {
                        let _ = writeln!(out, "     messages exchanged:");
                    }
                    for e in &case.exchanges {
                        let _ = writeln!(
                            out,
                            "       {} {} {} {} {} → {}",
                            e.at.format("%H:%M:%S%.3f"),
                            e.way.arrow(),
                            e.rpc,
                            e.msgid,
                            e.transfer_id,
                            e.outcome
                        );
                    }
                }
            }
        }
        let (pass, fail, skip) = self.counts();
        let _ = writeln!(out, "\n{pass} passed, {fail} failed, {skip} skipped");
        out
    }

    /// The JUnit XML report.
    #[must_use]
    pub fn junit(&self) -> String {
        let (_, fail, skip) = self.counts();
        let total: f64 = self.cases.iter().map(|c| c.seconds).sum();
        let suite = format!("yibao conformance ({})", self.role.name());
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{fail}\" skipped=\"{skip}\" time=\"{total:.3}\">",
            xml(&suite),
            self.cases.len()
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fail}\" skipped=\"{skip}\" time=\"{total:.3}\" timestamp=\"{}\">",
            xml(&suite),
            self.cases.len(),
            self.started_at.format("%Y-%m-%dT%H:%M:%S")
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"target\" value=\"{}\"/><property name=\"seed\" value=\"{}\"/><property name=\"first-person\" value=\"{}\"/></properties>",
            xml(&self.target),
            self.seed,
            self.first_person
        );
        for case in &self.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"conformance.{}\" name=\"{}\" time=\"{:.3}\"",
                self.role.name(),
                case.name,
                case.seconds
            );
            match &case.outcome {
                CaseOutcome::Pass => out.push_str("/>\n"),
                CaseOutcome::Skip(reason) => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(reason)
                    );
                }
                CaseOutcome::Fail { expected, observed } => {
                    let mut body = format!("{}\n\nmessages exchanged:\n", case.expectation);
                    for e in &case.exchanges {
                        let _ = writeln!(
                            body,
                            "{} {} {} {} {} -> {}",
                            e.at.to_rfc3339(),
                            e.way.arrow(),
                            e.rpc,
                            e.msgid,
                            e.transfer_id,
                            e.outcome
                        );
                    }
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"expected: {}; observed: {}\" type=\"conformance\">{}</failure>\n    </testcase>",
                        xml(expected),
                        xml(observed),
                        xml(&body)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// The self-contained HTML report.
    #[must_use]
    pub fn html(&self) -> String {
        let (pass, fail, skip) = self.counts();
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>yibao conformance: {role} bureau</title>\n<style>{STYLE}</style></head><body>\n\
             <h1>yibao conformance: a {role} bureau</h1>\n\
             <p class=\"meta\">Target <code>{target}</code>; the suite played {other} on <code>{listen}</code>; seed {seed}, <code>--first-person {first}</code>; started {started} UTC.</p>\n\
             <p class=\"totals\"><span class=\"PASS\">{pass} passed</span> <span class=\"FAIL\">{fail} failed</span> <span class=\"SKIP\">{skip} skipped</span></p>\n\
             <table class=\"cases\"><tr><th>Result</th><th>Case</th><th>Expectation</th><th>Time</th></tr>\n",
            role = self.role.name(),
            target = html(&self.target),
            other = self.role.other().name(),
            listen = self.listen,
            seed = self.seed,
            first = self.first_person,
            started = self.started_at.format("%Y-%m-%d %H:%M:%S"),
        );
        for case in &self.cases {
            let _ = writeln!(
                out,
                "<tr><td class=\"{w}\">{w}</td><td><a href=\"#{n}\">{n}</a></td><td>{e}</td><td>{s:.1} s</td></tr>",
                w = case.outcome.word(),
                n = case.name,
                e = html(case.expectation),
                s = case.seconds
            );
        }
        out.push_str("</table>\n");
        for case in &self.cases {
            out.push_str(&html_case(case));
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// One case's section of the HTML report: its expectation, why it failed or was skipped, the
/// messages the suite exchanged and the target's journal.
fn html_case(case: &CaseReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section id=\"{n}\"><h2><span class=\"{w}\">{w}</span> {n}</h2><p>{e}</p>",
        n = case.name,
        w = case.outcome.word(),
        e = html(case.expectation)
    );
    match &case.outcome {
        CaseOutcome::Pass => {}
        CaseOutcome::Skip(reason) => {
            let _ = writeln!(out, "<p class=\"why\">Skipped: {}</p>", html(reason));
        }
        CaseOutcome::Fail { expected, observed } => {
            let _ = writeln!(
                out,
                "<dl class=\"why\"><dt>Expected</dt><dd>{}</dd><dt>Observed</dt><dd>{}</dd></dl>",
                html(expected),
                html(observed)
            );
        }
    }
    if !case.exchanges.is_empty() {
        out.push_str("<h3>Messages the suite exchanged</h3><table class=\"msgs\"><tr><th>Time (UTC)</th><th>Way</th><th>RPC</th><th>msgid</th><th>Transfer</th><th>What came of it</th></tr>\n");
        for e in &case.exchanges {
            let _ = writeln!(
                out,
                "<tr class=\"{c}\"><td>{t}</td><td>{w}</td><td>{r}</td><td><code>{m}</code></td><td><code>{id}</code></td><td>{o}</td></tr>",
                c = if e.outcome.contains("VIOLATION") {
                    "bad"
                } else {
                    ""
                },
                t = e.at.format("%H:%M:%S%.3f"),
                w = e.way.arrow(),
                r = e.rpc,
                m = html(&e.msgid),
                id = html(&e.transfer_id),
                o = html(&e.outcome)
            );
        }
        out.push_str("</table>\n");
    }
    if !case.target_journal.is_empty() {
        out.push_str("<h3>The target's message journal</h3><table class=\"msgs\"><tr><th>Time (target clock)</th><th>Way</th><th>Kind</th><th>msgid</th><th>Transfer</th><th>Attempt</th><th>Outcome</th><th>Fault</th></tr>\n");
        for j in &case.target_journal {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&j.at),
                html(&j.way),
                html(&j.kind),
                html(&j.msgid),
                html(&j.transfer_id),
                j.attempt,
                html(&j.outcome),
                html(&j.fault)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-top:1px solid #ddd;padding-top:1em}h3{font-size:1em}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.msgs td{font-size:12px}code{font-size:12px}.PASS{color:#176b1d;font-weight:600}\
.FAIL{color:#b00020;font-weight:600}.SKIP{color:#8a6d00;font-weight:600}.totals span{margin-right:1.5em}\
.why{background:#fff5f5;border-left:4px solid #b00020;padding:.5em 1em}.why dt{font-weight:600}tr.bad td{background:#fff0f0}\
.meta{color:#555}";

/// Escapes text for an XML attribute or element.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML.
fn html(text: &str) -> String {
    xml(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Way;

    fn report() -> Report {
        Report {
            role: Role::TransferIn,
            target: "https://127.0.0.1:1".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 2)),
            seed: 2026,
            first_person: 64,
            started_at: DateTime::<Utc>::default(),
            cases: vec![
                CaseReport {
                    name: "form-credited",
                    expectation: "credited",
                    outcome: CaseOutcome::Pass,
                    seconds: 0.5,
                    transfers: vec![],
                    exchanges: vec![],
                    target_journal: vec![],
                },
                CaseReport {
                    name: "modified-body-1004",
                    expectation: "infcode 1004 <always>",
                    outcome: CaseOutcome::Fail {
                        expected: "infcode 1004".into(),
                        observed: "infcode 0 & \"credited\"".into(),
                    },
                    seconds: 0.2,
                    transfers: vec!["150100202611300000001".into()],
                    exchanges: vec![Exchange {
                        at: DateTime::<Utc>::default(),
                        way: Way::ToTarget,
                        rpc: "DeliverInsuranceRecord",
                        msgid: "B15010090417202611300000000001".into(),
                        infno: "9102".into(),
                        transfer_id: "150100202611300000001".into(),
                        outcome: "infcode 0".into(),
                    }],
                    target_journal: vec![],
                },
                CaseReport {
                    name: "batch-one-bad-message",
                    expectation: "batch",
                    outcome: CaseOutcome::Skip("no batches".into()),
                    seconds: 0.1,
                    transfers: vec![],
                    exchanges: vec![],
                    target_journal: vec![],
                },
            ],
        }
    }

    #[test]
    fn counts_and_exit_follow_the_cases() {
        let report = report();
        assert_eq!(report.counts(), (1, 1, 1));
        assert!(!report.passed());
        let text = report.text();
        assert!(text.contains("FAIL modified-body-1004"), "{text}");
        assert!(text.contains("expected: infcode 1004"), "{text}");
        assert!(text.contains("B15010090417202611300000000001"), "{text}");
        assert!(text.contains("1 passed, 1 failed, 1 skipped"), "{text}");
    }

    #[test]
    fn junit_names_each_case_and_escapes_text() {
        let junit = report().junit();
        assert!(
            junit.contains("tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{junit}"
        );
        assert!(junit.contains("name=\"form-credited\""), "{junit}");
        assert!(
            junit.contains("<skipped message=\"no batches\"/>"),
            "{junit}"
        );
        assert!(
            junit.contains("infcode 0 &amp; &quot;credited&quot;"),
            "{junit}"
        );
        assert!(!junit.contains("<always>"), "{junit}");
    }

    #[test]
    fn html_is_self_contained_and_shows_a_failures_messages() {
        let html = report().html();
        assert!(
            !html.contains("<script") && !html.contains("src="),
            "no external parts"
        );
        assert!(html.contains("id=\"modified-body-1004\""));
        assert!(html.contains("Messages the suite exchanged"));
        assert!(html.contains("&lt;always&gt;"));
    }
}
