//! This process's name among the replicas of one bureau that share a PostgreSQL store: who
//! claims an outbox message, who holds the timers' lease. Made once per process (its id and a
//! random part), so a restarted replica is a new claimant whose predecessor's claims lapse.

use std::sync::OnceLock;

/// This replica's id, `<pid>-<random>`.
pub fn id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_id_is_made_once_and_names_the_process() {
        assert_eq!(super::id(), super::id());
        assert!(super::id().starts_with(&format!("{}-", std::process::id())));
    }
}
