//! The narrow context a protocol step runs in: the time it reads, and the site's fixed facts
//! (name, hosted regions, directory, policies, calendar). Drivers see this, never the whole
//! service: a step cannot reach the network, the watchers or another transfer's store job.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use yibao_domain::calendar::{StatutoryDeadlines, WorkingCalendar};
use yibao_domain::classify::Connectivity;
use yibao_domain::policy::RegionPolicy;
use yibao_domain::region::{Pooling, RegionCode};
use yibao_domain::review::Hosting;
use yibao_runtime::directory::{BureauName, BureauRole, RegionDirectory, RegionEntry};

use crate::error::Error;

/// What a bureau knows that never changes while it runs.
#[derive(Debug)]
pub struct Site {
    /// The binary's role: the defaults it started with. A bureau plays both sides, each
    /// transfer its own; only a bureau named by its role reports its state counts under it.
    pub role: BureauRole,
    /// This bureau's name in the directory (`--bureau`; the role's name by default).
    pub name: BureauName,
    /// The pooling regions this bureau hosts: those the directory lists under its name.
    pub hosted: Vec<RegionCode>,
    /// The 12-character institution code at the head of every msgid this bureau sends.
    pub institution: String,
    /// Every region both services know, with its connectivity and policy.
    pub directory: RegionDirectory,
    /// Working days for statutory deadlines.
    pub calendar: WorkingCalendar,
    /// The national defaults, for regions the directory does not list.
    pub default_policy: RegionPolicy,
    /// Connectivity set at run time by fault rules, over the directory's.
    pub connectivity_overrides: Arc<ConnectivityOverrides>,
    /// A deliberate protocol bug, for showing that the conformance suite catches one; never
    /// set outside tests.
    pub broken: Broken,
}

/// The environment variable that breaks a bureau on purpose: `forget-msgids`, `remit-short`.
pub const BROKEN_ENV: &str = "YIBAO_BROKEN_FOR_TESTS";

/// A deliberate protocol bug a bureau can be started with (`YIBAO_BROKEN_FOR_TESTS`), so that
/// CI can show the conformance suite failing the cases it should. Test-only: a bureau started
/// with one logs an error at start and in its health, and must never run for real.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Broken {
    /// A correct bureau.
    #[default]
    No,
    /// Ignores duplicates: every message is processed as if its msgid were new (no replayed
    /// answer, no infcode 1004 for a modified body), and nothing is remembered.
    ForgetMsgids,
    /// The fund leg: the first remittance of each transfer goes one cent short (one sent again
    /// after a return is exact), to drive a short remittance end to end.
    RemitShort,
}

impl Broken {
    /// Reads [`BROKEN_ENV`]; an unknown value is an error naming the ones there are.
    ///
    /// # Errors
    /// When the variable names no known bug.
    pub fn from_env() -> Result<Broken, String> {
        match std::env::var(BROKEN_ENV).ok().as_deref() {
            None | Some("") => Ok(Broken::No),
            Some("forget-msgids") => Ok(Broken::ForgetMsgids),
            Some("remit-short") => Ok(Broken::RemitShort),
            Some(other) => Err(format!(
                "{BROKEN_ENV}={other:?}: the deliberate bugs are \"forget-msgids\" and \
                 \"remit-short\""
            )),
        }
    }
}

/// Regions whose connectivity changed at run time, over the directory file's: set by an
/// operator (AdminService.SetRegionConnectivity: a region joined the platform) or by a fault
/// rule. Every change bumps a generation, so the sweep reviews waiting applications again
/// after one (and once after start).
#[derive(Debug, Default)]
pub struct ConnectivityOverrides {
    /// The overrides, by pooling region.
    set: std::sync::RwLock<std::collections::HashMap<RegionCode, Connectivity>>,
    /// How codes group into pooling regions (the directory's), so that any code of a pooling
    /// region finds its override.
    pooling: Pooling,
    /// Changes so far (starting at 1: the directory read at start is one).
    generation: std::sync::atomic::AtomicU64,
    /// The generation the sweep last reviewed waiting applications at (0: never).
    reviewed: std::sync::atomic::AtomicU64,
}

impl ConnectivityOverrides {
    /// No override yet, for codes grouped as `pooling` groups them.
    pub fn new(pooling: Pooling) -> Self {
        Self {
            set: std::sync::RwLock::default(),
            pooling,
            generation: std::sync::atomic::AtomicU64::default(),
            reviewed: std::sync::atomic::AtomicU64::default(),
        }
    }

    /// The override of `code`'s pooling region, if one is set.
    pub fn get(&self, code: RegionCode) -> Option<Connectivity> {
        let key = self.pooling.pooling_region(code);
        self.set.read().ok().and_then(|map| map.get(&key).copied())
    }

    /// Sets an override.
    pub fn set(&self, code: RegionCode, connectivity: Connectivity) {
        if let Ok(mut map) = self.set.write() {
            map.insert(self.pooling.pooling_region(code), connectivity);
        }
        self.changed();
    }

    /// Removes an override.
    pub fn unset(&self, code: RegionCode) {
        if let Ok(mut map) = self.set.write() {
            map.remove(&self.pooling.pooling_region(code));
        }
        self.changed();
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether connectivity changed since the last call that returned true (true the first
    /// time): the sweep's cue to review waiting applications again.
    pub fn take_change(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.generation.load(SeqCst).saturating_add(1);
        self.reviewed.swap(now, SeqCst) != now
    }
}

impl Site {
    /// Whether this bureau hosts the pooling region of `code`.
    pub fn hosts(&self, code: RegionCode) -> bool {
        self.hosted.contains(&self.directory.pooling_region(code))
    }

    /// How codes group into pooling regions: the directory's, for every pooling-region rule.
    pub fn pooling(&self) -> &Pooling {
        self.directory.pooling()
    }

    /// The pooling region of a region code a stored document holds (`field` names it): the
    /// directory's grouping. A code that does not parse is a broken document, never a default.
    pub fn stored_pooling_region(&self, field: &str, stored: &str) -> Result<RegionCode, Error> {
        RegionCode::parse(stored)
            .map(|code| self.directory.pooling_region(code))
            .map_err(|_| {
                Error::Internal(format!(
                    "stored transfer document unreadable: {field} is not a region code"
                ))
            })
    }

    /// The directory entry for a pooling region, or an invalid-argument error naming `field`.
    pub fn region(&self, field: &'static str, code: RegionCode) -> Result<&RegionEntry, Error> {
        self.directory.region(code).ok_or_else(|| {
            Error::invalid(
                field,
                format!("region {code} is not in the region directory"),
            )
        })
    }

    /// The policy of a pooling region (national defaults for unknown regions).
    pub fn policy(&self, code: RegionCode) -> &RegionPolicy {
        self.directory
            .region(code)
            .map_or(&self.default_policy, |entry| &entry.policy)
    }

    /// Whether a region has joined the platform (unknown regions have not), unless a fault rule
    /// says otherwise for now.
    pub fn connectivity(&self, code: RegionCode) -> Connectivity {
        if let Some(connectivity) = self.connectivity_overrides.get(code) {
            return connectivity;
        }
        match self.directory.region(code) {
            Some(entry) if entry.connected => Connectivity::Connected,
            _ => Connectivity::NotConnected,
        }
    }

    /// Whether another bureau — any bureau of the directory but this one — hosts a region.
    pub fn hosting(&self, code: RegionCode) -> Hosting {
        match self.directory.bureau_of(code) {
            Some(bureau) if *bureau != self.name => Hosting::ByPeer,
            _ => Hosting::NotByPeer,
        }
    }

    /// The statutory deadlines of a transfer applied on `applied_on`.
    pub fn deadlines(
        &self,
        applied_on: NaiveDate,
        form_received_on: Option<NaiveDate>,
    ) -> Option<StatutoryDeadlines> {
        StatutoryDeadlines::statutory(&self.calendar, applied_on, form_received_on).ok()
    }
}

/// The 12-character institution code at the head of a bureau's msgids: `B`, the first region
/// it hosts, and five digits — 00001 for `transfer-out`, 00002 for `transfer-in` (as the pair
/// always had), 00003 for any other name. The region makes it unique: no two bureaus host one.
pub fn institution_code(name: &BureauName, first_hosted: RegionCode) -> String {
    let number = match name.role() {
        Some(BureauRole::TransferOut) => 1,
        Some(BureauRole::TransferIn) => 2,
        None => 3,
    };
    format!("B{first_hosted}{number:05}")
}

/// One step's view of the world: the moment it runs at and the site.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The service clock's reading when the step was queued.
    pub now: DateTime<Utc>,
    /// The site's fixed facts.
    pub site: Arc<Site>,
}

impl StepContext {
    /// Today in China time, the day deadlines count in.
    pub fn today(&self) -> NaiveDate {
        yibao_runtime::clock::china_date(self.now)
    }
}
