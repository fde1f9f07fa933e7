//! How long the transfer-out review (审核) takes (DOMAIN.md, "Timings seen in practice": online
//! faster than at the counter; some regions take 30 working days, some months).
//!
//! A region's policy ([`ReviewTime`]) says how many working days its review of an application
//! takes by channel. With 0 (the default) the review is decided at once, in the answer to the
//! request. Otherwise an application the review would accept today waits until the review day
//! ([`Review::UnderReview`]), and is reviewed again then with the facts of that day; an
//! application refused today is refused at once (no review day can mend, say, an unknown
//! person). A review day after the transfer-out bureau's 10-working-day deadline breaks that
//! deadline: the transfer is flagged overdue while it waits (`overdue::Outstanding`: the form is
//! still owed).

use chrono::NaiveDate;

use crate::application::ApplicationChannel;
use crate::calendar::{Deadline, DeadlineError, WorkingCalendar};
use crate::policy::{RegionPolicy, ReviewTime};
use crate::transfer::out_side::Review;

/// The day the review of an application received on `received_on` is decided, on the working
/// calendar, by the transfer-out region's policy for the channel; `None` when it is decided at
/// once (0 working days).
///
/// # Errors
/// [`DeadlineError`] if the count runs past what the calendar can count.
pub fn review_day(
    out_policy: &RegionPolicy,
    channel: ApplicationChannel,
    received_on: NaiveDate,
    calendar: &WorkingCalendar,
) -> Result<Option<Deadline>, DeadlineError> {
    let days = working_days(out_policy.review_working_days, channel);
    if days == 0 {
        return Ok(None);
    }
    calendar.add_working_days(received_on, days).map(Some)
}

/// How a review decided today opens the transfer when the review takes time: an accepting
/// outcome waits for its review day; a refusal is final at once. Without a review day the
/// outcome stands.
pub fn defer_to_review_day(review: Review, review_day: Option<NaiveDate>) -> Review {
    match (review, review_day) {
        (Review::Refused(_), _) | (_, None) => review,
        (_, Some(due_on)) => Review::UnderReview { due_on },
    }
}

fn working_days(time: ReviewTime, channel: ApplicationChannel) -> u16 {
    match channel {
        ApplicationChannel::Online => time.online,
        ApplicationChannel::Counter => time.counter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::out_side::{BalanceRoute, OutState};
    use crate::transfer::{RefusalReason, TransferState};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a day")
    }

    fn policy(online: u16, counter: u16) -> RegionPolicy {
        RegionPolicy {
            review_working_days: ReviewTime { online, counter },
            ..RegionPolicy::default()
        }
    }

    #[test]
    fn the_review_day_counts_the_channels_working_days_on_the_calendar() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        let region = policy(3, 20);
        // Thu 2026-09-24: Mid-Autumn (Sep 25-27) is off; 3 working days are Sep 28, 29, 30.
        let online = review_day(
            &region,
            ApplicationChannel::Online,
            day(2026, 9, 24),
            &calendar,
        )
        .expect("counts")
        .expect("takes time");
        assert_eq!(online.due_on, day(2026, 9, 30));
        // 20 working days skip National Day (Oct 1-7) and count Sat Oct 10.
        let counter = review_day(
            &region,
            ApplicationChannel::Counter,
            day(2026, 9, 24),
            &calendar,
        )
        .expect("counts")
        .expect("takes time");
        assert_eq!(counter.due_on, day(2026, 10, 29));
        assert!(counter.due_on > online.due_on, "online is faster");
    }

    #[test]
    fn a_region_without_a_review_time_decides_at_once() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        for channel in [ApplicationChannel::Online, ApplicationChannel::Counter] {
            let due = review_day(
                &RegionPolicy::default(),
                channel,
                day(2026, 3, 2),
                &calendar,
            );
            assert_eq!(due, Ok(None));
        }
        let counter_only = policy(0, 5);
        let online = review_day(
            &counter_only,
            ApplicationChannel::Online,
            day(2026, 3, 2),
            &calendar,
        );
        assert_eq!(online, Ok(None), "online is decided at once there");
    }

    #[test]
    fn an_application_refused_today_is_refused_at_once_an_accepted_one_waits_for_its_review_day() {
        let due_on = day(2026, 3, 16);
        let refused = Review::Refused(RefusalReason::Arrears);
        assert_eq!(defer_to_review_day(refused, Some(due_on)), refused);
        for accepted in [
            Review::DeliverForm(BalanceRoute::MovesWithForm),
            Review::PayToBankOnly,
            Review::AwaitConnection,
        ] {
            assert_eq!(
                defer_to_review_day(accepted, Some(due_on)),
                Review::UnderReview { due_on }
            );
            assert_eq!(defer_to_review_day(accepted, None), accepted);
        }
    }

    #[test]
    fn a_review_still_pending_after_the_transfer_out_deadline_is_overdue() {
        use crate::overdue::Overdue;
        use crate::transfer::Stage;
        let calendar = WorkingCalendar::shipped().expect("calendar");
        let deadlines =
            crate::calendar::StatutoryDeadlines::statutory(&calendar, day(2026, 3, 2), None)
                .expect("counts");
        assert_eq!(deadlines.transfer_out_due.due_on, day(2026, 3, 16));
        let waiting = TransferState::Out(OutState::UnderReview {
            due_on: day(2026, 4, 13),
        })
        .stage();
        assert_eq!(waiting, Stage::UnderReview);
        assert!(!Overdue::of(&deadlines, waiting, day(2026, 3, 16)).transfer_out);
        assert!(Overdue::of(&deadlines, waiting, day(2026, 3, 17)).transfer_out);
        let decided = TransferState::Out(OutState::InTransit {
            balance: BalanceRoute::MovesWithForm,
        })
        .stage();
        assert!(
            !Overdue::of(&deadlines, decided, day(2026, 3, 17)).transfer_out,
            "the form went: the review is done"
        );
    }
}
