//! Fault rules: faults on purpose, for teams testing what *their* bureau does when this one is
//! slow, silent, repeats itself, answers errors or loses answers. A rule matches messages (way,
//! kind, regions, transfer, person, attempt, chance) and says what happens to them; the seams
//! that apply the decision are the platform handlers (received messages), the outbox transport
//! (sent messages, bank payouts) and the site's connectivity. Nothing here knows a wire type or
//! the store: a rule decides, its seam acts, and the seam notes the fault in the transfer's
//! history.
//!
//! Rules come from the admin API (`AddFaultRule`, `ListFaultRules`, `ClearFaultRules`, and
//! `yibao fault`) and from a TOML file read at start (`faults` setting): a list of `[[rule]]`
//! tables with the fields of `admin.proto`'s `FaultRule`, spelled the same, enum values in
//! lower case (`fault = "lose_answer"`, `direction = "receiving"`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Deserialize;
use yibao_domain::classify::Connectivity;
use yibao_domain::region::RegionCode;

use crate::context::ConnectivityOverrides;
use crate::messages::Kind;

/// The most bytes of details a status fault may carry.
pub const MAX_STATUS_DETAILS: usize = 4_096;
/// The most rules a bureau holds.
pub const MAX_RULES: usize = 256;
/// The longest delay or hold a rule may ask for.
pub const MAX_DELAY_MS: u32 = 60_000;
/// How long a never-answered call is held at most (when the caller set no shorter deadline).
pub const NEVER_ANSWER_HOLD: Duration = Duration::from_secs(30);
/// The most msgids a rule counts deliveries of (for `first_attempts` on received messages);
/// beyond it the count starts again.
const MAX_COUNTED_MSGIDS: usize = 10_000;
/// The kind of the query messages a bureau receives from its transfer-out peer.
pub const QUERY_TRANSFER_IN: &str = "QUERY_TRANSFER_IN";

/// Which way a message travels, seen from this bureau.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Either way (a rule's matcher only).
    #[default]
    Any,
    /// Sent by this bureau.
    Sending,
    /// Received by this bureau.
    Receiving,
}

/// What a rule does (`admin.proto`'s `FaultKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Wait, then go on.
    Delay,
    /// Answer (or fail with) a gRPC status.
    Status,
    /// Answer (or read) an infcode.
    Infcode,
    /// Hold until the caller's deadline.
    NeverAnswer,
    /// Drop the connection before an answer.
    ResetConnection,
    /// Apply, then lose the answer.
    LoseAnswer,
    /// Deliver twice.
    DeliverTwice,
    /// Hold while later messages pass.
    Reorder,
    /// The bank gateway fails.
    BankFail,
    /// The bank gateway answers later.
    BankDelay,
    /// A region counts as not connected.
    RegionDisconnected,
    /// A region counts as connected.
    RegionConnected,
}

/// A rule as written (TOML file, or converted from the admin API): every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSpec {
    /// Groups rules for clearing.
    pub label: String,
    /// Which way.
    pub direction: Direction,
    /// The message kind (or infno); empty for any.
    pub message_kind: String,
    /// The envelope's sender region; empty for any.
    pub sender_region_code: String,
    /// The envelope's receiver region; empty for any.
    pub receiver_region_code: String,
    /// The transfer; empty for any.
    pub transfer_id: String,
    /// The person; empty for any.
    pub certno: String,
    /// Only the first N attempts (0: all).
    pub first_attempts: u32,
    /// The chance, 0 to 1 (0: always).
    pub probability: f64,
    /// The fault.
    pub fault: Option<Fault>,
    /// Delay / reorder: shortest wait.
    pub delay_min_ms: u32,
    /// Delay / reorder: longest wait.
    pub delay_max_ms: u32,
    /// Status: the gRPC code.
    pub grpc_code: i32,
    /// Status / infcode: the message.
    pub message: String,
    /// Infcode: the infcode.
    pub infcode: i32,
    /// Region faults: the region.
    pub region_code: String,
    /// Status: the details sent with it (grpc-status-details-bin).
    pub status_details: Vec<u8>,
}

/// Why a rule was refused: the field and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct RuleError {
    /// The field, as `admin.proto` names it.
    pub field: &'static str,
    /// What is wrong.
    pub rule: String,
}

fn refuse(field: &'static str, rule: impl Into<String>) -> RuleError {
    RuleError {
        field,
        rule: rule.into(),
    }
}

/// The file of rules read at start: `[[rule]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

impl RuleSpec {
    /// Checks every field; the message kind comes back in its outbox spelling.
    ///
    /// # Errors
    /// The first field that breaks its rule.
    pub fn validate(mut self) -> Result<Self, RuleError> {
        let fault = self.fault.ok_or_else(|| refuse("fault", "required"))?;
        if !self.message_kind.is_empty() {
            self.message_kind = kind_name(&self.message_kind).ok_or_else(|| {
                refuse(
                    "message_kind",
                    "one of REQUEST_TRANSFER_OUT, DELIVER_FORM, CONFIRM_SETTLEMENT, ABORT, \
                     QUERY_TRANSFER_OUT, QUERY_TRANSFER_IN, BANK_PAYOUT (or an infno)",
                )
            })?;
        }
        for (field, code) in [
            ("sender_region_code", &self.sender_region_code),
            ("receiver_region_code", &self.receiver_region_code),
        ] {
            if !code.is_empty() && RegionCode::parse(code).is_err() {
                return Err(refuse(field, "a 6-digit region code"));
            }
        }
        let texts = [
            ("label", &self.label, 64),
            ("transfer_id", &self.transfer_id, 21),
            ("certno", &self.certno, 18),
            ("message", &self.message, 200),
        ];
        for (field, text, most) in texts {
            if text.chars().count() > most || text.chars().any(char::is_control) {
                return Err(refuse(
                    field,
                    format!("at most {most} characters, no control characters"),
                ));
            }
        }
        if self.status_details.len() > MAX_STATUS_DETAILS {
            return Err(refuse(
                "status_details",
                format!("at most {MAX_STATUS_DETAILS} bytes"),
            ));
        }
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(refuse("probability", "0 to 1"));
        }
        self.check_fault_fields(fault)?;
        Ok(self)
    }

    /// The fields each fault needs.
    fn check_fault_fields(&self, fault: Fault) -> Result<(), RuleError> {
        match fault {
            Fault::Delay | Fault::Reorder => {
                if self.delay_max_ms > MAX_DELAY_MS {
                    return Err(refuse("delay_max_ms", format!("at most {MAX_DELAY_MS}")));
                }
                if self.delay_min_ms > self.delay_max_ms {
                    return Err(refuse("delay_max_ms", "at least delay_min_ms"));
                }
                if self.delay_max_ms == 0 {
                    return Err(refuse("delay_max_ms", "more than 0"));
                }
            }
            Fault::Status if !(1..=16).contains(&self.grpc_code) => {
                return Err(refuse("grpc_code", "a gRPC status code, 1 to 16"));
            }
            Fault::Infcode if !(1001..=1999).contains(&self.infcode) => {
                return Err(refuse("infcode", "1001 to 1999"));
            }
            Fault::RegionDisconnected | Fault::RegionConnected
                if RegionCode::parse(&self.region_code).is_err() =>
            {
                return Err(refuse("region_code", "a 6-digit region code"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A message kind's outbox spelling, from its name or infno.
fn kind_name(text: &str) -> Option<String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == QUERY_TRANSFER_IN || upper == "9105" {
        return Some(if upper == "9105" {
            Kind::QueryTransferOut.as_str().to_owned()
        } else {
            upper
        });
    }
    Kind::ALL
        .into_iter()
        .find(|kind| kind.as_str() == upper || kind.infno() == upper)
        .map(|kind| kind.as_str().to_owned())
}

/// A rule in force.
#[derive(Debug)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// What it says (validated).
    pub spec: RuleSpec,
    /// Faults injected so far.
    pub injected: AtomicU64,
    /// Deliveries counted per msgid (received messages, for `first_attempts`).
    deliveries: Mutex<HashMap<String, u32>>,
}

/// A message as a seam sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Sending or receiving.
    pub direction: Direction,
    /// Its kind, in the outbox spelling.
    pub kind: &'a str,
    /// The envelope's sender region.
    pub sender: &'a str,
    /// The envelope's receiver region.
    pub receiver: &'a str,
    /// The transfer.
    pub transfer_id: &'a str,
    /// The msgid (received messages count deliveries by it).
    pub msgid: &'a str,
    /// The attempt (sent messages: 1 for the first).
    pub attempt: u32,
    /// The person, when the seam knows it.
    pub certno: Option<&'a str>,
}

/// What happens to a message: the seams act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Wait this long, then go on.
    Delay(Duration),
    /// Answer or fail with this gRPC code, message and details.
    Status(tonic::Code, String, Vec<u8>),
    /// Answer or read this infcode and message.
    Infcode(i32, String),
    /// Hold until the deadline.
    NeverAnswer,
    /// Drop the connection.
    ResetConnection,
    /// Apply, then lose the answer.
    LoseAnswer,
    /// Deliver twice.
    DeliverTwice,
    /// Hold this long while later messages pass.
    Reorder(Duration),
    /// The bank fails.
    BankFail,
    /// The bank answers later.
    BankDelay,
}

/// A fault a rule injected: the rule and what to do.
#[derive(Debug, Clone)]
pub struct Injected {
    /// The rule's id.
    pub rule_id: String,
    /// What to do.
    pub action: Action,
}

impl Injected {
    /// The line noted in the transfer's history.
    pub fn note(&self, direction: Direction) -> String {
        let way = match direction {
            Direction::Sending => "sending",
            Direction::Receiving | Direction::Any => "receiving",
        };
        format!("fault rule {} ({way}): {:?}", self.rule_id, self.action)
    }
}

/// The rules in force, in the order added.
#[derive(Debug, Default)]
pub struct FaultRules {
    rules: RwLock<Vec<Arc<Rule>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    connectivity: Arc<ConnectivityOverrides>,
}

impl FaultRules {
    /// No rules; region faults change `connectivity`.
    pub fn new(connectivity: Arc<ConnectivityOverrides>) -> Self {
        Self {
            connectivity,
            ..Self::default()
        }
    }

    /// Reads the rules of a TOML file and adds them.
    ///
    /// # Errors
    /// If the file cannot be read or parsed, or a rule is refused (naming it by position).
    pub fn load_file(&self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("fault rules {}: {error}", path.display()))?;
        let file: RuleFile = toml::from_str(&text)
            .map_err(|error| format!("fault rules {}: {error}", path.display()))?;
        let count = file.rule.len();
        for (index, spec) in file.rule.into_iter().enumerate() {
            self.add(spec).map_err(|error| {
                format!(
                    "fault rules {}: rule {}: {error}",
                    path.display(),
                    index + 1
                )
            })?;
        }
        Ok(count)
    }

    /// Adds a rule; its id.
    ///
    /// # Errors
    /// A field that breaks its rule, or `MAX_RULES` reached (`field` is `rule`).
    pub fn add(&self, spec: RuleSpec) -> Result<Arc<Rule>, RuleError> {
        let spec = spec.validate()?;
        let mut rules = self
            .rules
            .write()
            .map_err(|_| refuse("rule", "the rules are unavailable"))?;
        if rules.len() >= MAX_RULES {
            return Err(refuse("rule", format!("at most {MAX_RULES} rules")));
        }
        let id = format!("r{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let rule = Arc::new(Rule {
            id,
            spec,
            injected: AtomicU64::new(0),
            deliveries: Mutex::new(HashMap::new()),
        });
        self.apply_connectivity(&rule.spec, Apply::Set);
        rules.push(rule.clone());
        self.count.store(rules.len(), Ordering::Release);
        Ok(rule)
    }

    /// The rules in force.
    pub fn list(&self) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .map(|rules| rules.clone())
            .unwrap_or_default()
    }

    /// Removes the rules with `label` (every rule when empty); how many.
    pub fn clear(&self, label: &str) -> usize {
        let Ok(mut rules) = self.rules.write() else {
            return 0;
        };
        let before = rules.len();
        let (gone, kept): (Vec<_>, Vec<_>) = rules
            .drain(..)
            .partition(|rule| label.is_empty() || rule.spec.label == label);
        *rules = kept;
        for rule in &gone {
            self.apply_connectivity(&rule.spec, Apply::Undo);
        }
        self.count.store(rules.len(), Ordering::Release);
        before - rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Whether any rule matches by sender region (so that a sending seam should find it).
    pub fn wants_sender(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
            && self
                .list()
                .iter()
                .any(|rule| !rule.spec.sender_region_code.is_empty())
    }

    /// Whether any rule matches by person (so that a seam should find the certno).
    pub fn wants_certno(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
            && self.list().iter().any(|rule| !rule.spec.certno.is_empty())
    }

    /// The fault for a message, if a rule matches and fires. Cheap when there are no rules.
    pub fn decide(&self, seen: &Seen<'_>) -> Option<Injected> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let rules = self.rules.read().ok()?;
        rules.iter().find_map(|rule| rule.fire(seen))
    }

    fn apply_connectivity(&self, spec: &RuleSpec, apply: Apply) {
        let connectivity = match spec.fault {
            Some(Fault::RegionConnected) => Connectivity::Connected,
            Some(Fault::RegionDisconnected) => Connectivity::NotConnected,
            _ => return,
        };
        if let Ok(code) = RegionCode::parse(&spec.region_code) {
            match apply {
                Apply::Set => self.connectivity.set(code, connectivity),
                Apply::Undo => self.connectivity.unset(code),
            }
        }
    }
}

/// Whether a region rule is being added or removed.
#[derive(Debug, Clone, Copy)]
enum Apply {
    Set,
    Undo,
}

impl Rule {
    /// This rule's fault for `seen`, counted, if it matches and fires.
    fn fire(&self, seen: &Seen<'_>) -> Option<Injected> {
        if !self.matches(seen) {
            return None;
        }
        if self.spec.first_attempts > 0 && self.attempt(seen) > self.spec.first_attempts {
            return None;
        }
        if self.spec.probability > 0.0 && rand::random::<f64>() >= self.spec.probability {
            return None;
        }
        let action = self.action()?;
        self.injected.fetch_add(1, Ordering::Relaxed);
        crate::measure::fault_injected(&self.id);
        Some(Injected {
            rule_id: self.id.clone(),
            action,
        })
    }

    fn matches(&self, seen: &Seen<'_>) -> bool {
        let spec = &self.spec;
        let field = |wanted: &str, value: &str| wanted.is_empty() || wanted == value;
        let bank_fault = matches!(spec.fault, Some(Fault::BankFail | Fault::BankDelay));
        let is_bank = seen.kind == Kind::BankPayout.as_str();
        (spec.direction == Direction::Any || spec.direction == seen.direction)
            && bank_fault == is_bank
            && field(&spec.message_kind, seen.kind)
            && field(&spec.sender_region_code, seen.sender)
            && field(&spec.receiver_region_code, seen.receiver)
            && field(&spec.transfer_id, seen.transfer_id)
            && (spec.certno.is_empty() || seen.certno == Some(spec.certno.as_str()))
    }

    /// The attempt of a sent message, or the delivery count of a received one.
    fn attempt(&self, seen: &Seen<'_>) -> u32 {
        if seen.direction == Direction::Sending {
            return seen.attempt;
        }
        let Ok(mut deliveries) = self.deliveries.lock() else {
            return u32::MAX;
        };
        if deliveries.len() >= MAX_COUNTED_MSGIDS && !deliveries.contains_key(seen.msgid) {
            deliveries.clear();
        }
        let count = deliveries.entry(seen.msgid.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// The action, with its wait drawn from the rule's range; region rules act when added.
    fn action(&self) -> Option<Action> {
        let spec = &self.spec;
        let wait = || {
            let ms = if spec.delay_max_ms > spec.delay_min_ms {
                spec.delay_min_ms
                    + rand::random::<u32>() % (spec.delay_max_ms - spec.delay_min_ms + 1)
            } else {
                spec.delay_min_ms
            };
            Duration::from_millis(u64::from(ms))
        };
        Some(match spec.fault? {
            Fault::Delay => Action::Delay(wait()),
            Fault::Reorder => Action::Reorder(wait()),
            Fault::Status => Action::Status(
                tonic::Code::from(spec.grpc_code),
                spec.message.clone(),
                spec.status_details.clone(),
            ),
            Fault::Infcode => Action::Infcode(spec.infcode, spec.message.clone()),
            Fault::NeverAnswer => Action::NeverAnswer,
            Fault::ResetConnection => Action::ResetConnection,
            Fault::LoseAnswer => Action::LoseAnswer,
            Fault::DeliverTwice => Action::DeliverTwice,
            Fault::BankFail => Action::BankFail,
            Fault::BankDelay => Action::BankDelay,
            Fault::RegionConnected | Fault::RegionDisconnected => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> FaultRules {
        FaultRules::new(Arc::default())
    }

    fn received<'a>(kind: &'a str, msgid: &'a str) -> Seen<'a> {
        Seen {
            direction: Direction::Receiving,
            kind,
            sender: "150100",
            receiver: "540100",
            transfer_id: "540100202603100000001",
            msgid,
            attempt: 1,
            certno: None,
        }
    }

    fn spec(fault: Fault) -> RuleSpec {
        RuleSpec {
            fault: Some(fault),
            ..RuleSpec::default()
        }
    }

    #[test]
    fn no_rules_inject_nothing() {
        assert!(rules().decide(&received("DELIVER_FORM", "m1")).is_none());
    }

    #[test]
    fn a_rule_matches_on_every_field_it_names_and_counts_what_it_injects() {
        let rules = rules();
        let rule = rules
            .add(RuleSpec {
                direction: Direction::Receiving,
                message_kind: "9102".to_owned(),
                sender_region_code: "150100".to_owned(),
                ..spec(Fault::LoseAnswer)
            })
            .expect("valid");
        assert_eq!(
            rule.spec.message_kind, "DELIVER_FORM",
            "an infno names its kind"
        );
        let injected = rules
            .decide(&received("DELIVER_FORM", "m1"))
            .expect("fires");
        assert_eq!(injected.action, Action::LoseAnswer);
        assert!(
            rules.decide(&received("ABORT", "m2")).is_none(),
            "another kind"
        );
        let mut sent = received("DELIVER_FORM", "m3");
        sent.direction = Direction::Sending;
        assert!(rules.decide(&sent).is_none(), "the other way");
        assert_eq!(rule.injected.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn first_attempts_counts_the_deliveries_of_each_msgid() {
        let rules = rules();
        rules
            .add(RuleSpec {
                first_attempts: 2,
                grpc_code: 14,
                status_details: vec![8, 14],
                ..spec(Fault::Status)
            })
            .expect("valid");
        let seen = received("DELIVER_FORM", "m1");
        assert_eq!(
            rules.decide(&seen).map(|injected| injected.action),
            Some(Action::Status(
                tonic::Code::Unavailable,
                String::new(),
                vec![8, 14]
            )),
            "the status carries its details"
        );
        assert!(rules.decide(&seen).is_some());
        assert!(
            rules.decide(&seen).is_none(),
            "the third delivery goes through"
        );
        assert!(
            rules.decide(&received("DELIVER_FORM", "m2")).is_some(),
            "a new msgid"
        );
    }

    #[test]
    fn bank_faults_match_bank_payouts_only() {
        let rules = rules();
        rules.add(spec(Fault::BankFail)).expect("valid");
        assert!(rules.decide(&received("DELIVER_FORM", "m1")).is_none());
        let mut payout = received(Kind::BankPayout.as_str(), "m2");
        payout.direction = Direction::Sending;
        assert_eq!(
            rules.decide(&payout).map(|injected| injected.action),
            Some(Action::BankFail)
        );
    }

    #[test]
    fn clearing_a_label_keeps_the_others_and_restores_connectivity() {
        let overrides = Arc::new(ConnectivityOverrides::default());
        let rules = FaultRules::new(overrides.clone());
        let lhasa = RegionCode::parse("540100").expect("code");
        rules
            .add(RuleSpec {
                label: "a".to_owned(),
                region_code: "540100".to_owned(),
                ..spec(Fault::RegionDisconnected)
            })
            .expect("valid");
        rules
            .add(RuleSpec {
                label: "b".to_owned(),
                ..spec(Fault::ResetConnection)
            })
            .expect("valid");
        assert_eq!(overrides.get(lhasa), Some(Connectivity::NotConnected));
        assert_eq!(rules.clear("a"), 1);
        assert_eq!(overrides.get(lhasa), None, "restored");
        assert_eq!(rules.list().len(), 1);
        assert_eq!(rules.clear(""), 1);
    }

    #[test]
    fn a_rule_missing_what_its_fault_needs_is_refused_naming_the_field() {
        let rules = rules();
        let cases = [
            (RuleSpec::default(), "fault"),
            (spec(Fault::Status), "grpc_code"),
            (spec(Fault::Infcode), "infcode"),
            (spec(Fault::Delay), "delay_max_ms"),
            (spec(Fault::RegionConnected), "region_code"),
            (
                RuleSpec {
                    probability: 1.5,
                    ..spec(Fault::LoseAnswer)
                },
                "probability",
            ),
            (
                RuleSpec {
                    message_kind: "SOMETHING".to_owned(),
                    ..spec(Fault::LoseAnswer)
                },
                "message_kind",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(rules.add(spec).expect_err("refused").field, field);
        }
        assert!(rules.list().is_empty(), "nothing added");
    }

    #[test]
    fn a_rule_file_is_read_with_the_contracts_field_names() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("faults.toml");
        std::fs::write(
            &path,
            "[[rule]]\nlabel = \"demo\"\ndirection = \"receiving\"\nmessage_kind = \"DELIVER_FORM\"\n\
             fault = \"lose_answer\"\nfirst_attempts = 1\n\n[[rule]]\nfault = \"delay\"\n\
             delay_min_ms = 10\ndelay_max_ms = 20\n",
        )
        .expect("write");
        let rules = rules();
        assert_eq!(rules.load_file(&path), Ok(2));
        std::fs::write(&path, "[[rule]]\nfault = \"teleport\"\n").expect("write");
        assert!(rules.load_file(&path).is_err());
    }

    #[test]
    fn a_rule_names_the_remittance_by_its_kind_or_its_infno() {
        for text in ["REMIT_BALANCE", "remit_balance", "9106"] {
            assert_eq!(kind_name(text).as_deref(), Some("REMIT_BALANCE"), "{text}");
        }
    }
}
