//! The transfer-out bureau's state machine (转出地).
//!
//! ```text
//!             review refused ─────────────▶ Rejected
//! open ─┬─ deliver the form ──▶ InTransit ──credited──▶ Completed   (balance settled to IN)
//!       │                          │   └──credited──▶ PayoutPending ─bank paid─▶ PaidToBank
//!       │                          ├──refused──▶ Returned            (balance back to account)
//!       │                          └──deadline──▶ Aborting ──IN credited──▶ (as credited)
//!       │                                           │ └──IN did not──▶ Returned | PayoutPending
//!       │                                           └──abort overdue──▶ NeedsOperator
//!       │                            (an answer, or an operator's resolution: as from Aborting)
//!       ├─ pay to bank only ──▶ PayoutPending ──bank paid──▶ PaidToBank
//!       │                        (pay requested)           (transit → bank posted)
//!       └─ review takes time ──▶ UnderReview ──review day: reviewed again──▶ as opened then
//!                                (nothing moves)             (form | payout | wait | Rejected)
//!
//! fund leg (the region remits apart from the form, BalanceRoute::RemittedApart):
//!   InTransit ──credited (the years)──▶ RemittanceDue ──remittance day──▶ Remitted
//!   Remitted ──matched──▶ Completed (balance settled to IN)
//!   Remitted ──short / over──▶ RemittanceRefused (balance still in transit; NEEDS_OPERATOR)
//!   RemittanceRefused | Remitted ──the remittance returned (message or operator)──▶ Remitted
//!                                  (remitted again, a new msgid)
//! ```
//!
//! With [`BalanceRoute::RemittedApart`] the form goes first and its credit at the transfer-in
//! bureau is the years only; the balance stays in transit until the remittance day (the
//! region's `remittance` policy, on the working calendar), when the remittance goes
//! ([`OutAction::SendRemittance`]), and is settled only when the transfer-in bureau answers that
//! it matched the form. A remittance refused as short or over waits in `RemittanceRefused`
//! until the transfer-in bureau returns it (ReturnRemittance, or an operator who was told so,
//! [`OutEvent::RemittanceReturned`]); only then is the balance remitted again, so the
//! transfer-in fund never holds two remittances of one balance from this bureau.
//!
//! A region whose review takes working days (`review::timing`) opens an application it would
//! accept in `UnderReview`, with the day its review is decided; on that day it is reviewed
//! again with the facts of the day ([`OutEvent::Reviewed`]) and proceeds as if opened then. No
//! money moves and no form goes before that.
//!
//! Every money movement is an action: the driver posts journal entries only when an action says
//! so. Entering `PayoutPending` *requests* the payout from the bank gateway
//! ([`OutAction::PayTransitToBank`], an outbox row); the gateway's confirmation
//! ([`OutEvent::BankPaid`]) *posts* it ([`OutAction::PostTransitToBank`]).
//!
//! **Invariant:** every [`OutAction::DebitAccountToTransit`] on a path is resolved by exactly
//! one of [`OutAction::SettleTransitToTransferIn`], [`OutAction::ReverseTransitToAccount`] or
//! [`OutAction::PostTransitToBank`] before the path reaches a terminal state, and none of those
//! happens without a debit before it. [`OutAction::PayTransitToBank`] is requested at most once
//! on a path, always before the posting it leads to. A bank payout after the form was delivered
//! happens only once the transfer-in bureau answered an abort saying it did not credit, or an
//! operator recorded that it confirmed so ([`OutEvent::OperatorResolved`]): a timeout is never
//! proof. An abort that stays unanswered past its bound ([`OutEvent::AbortOverdue`]) parks the
//! transfer in `NeedsOperator`, its balance still in transit.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{IllegalEvent, RefusalReason, Transition};
use crate::remittance::RemittanceCheck;

/// Where a transfer stands at the transfer-out bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutState {
    /// The form is on its way to (or at) the transfer-in bureau; any balance is in transit.
    InTransit {
        /// What happens to the balance once the transfer-in bureau credits.
        balance: BalanceRoute,
    },
    /// The deadline passed without an answer: an abort was sent and its answer is awaited.
    Aborting {
        /// What happens to the balance if the transfer-in bureau says it credited after all.
        balance: BalanceRoute,
        /// What happens to the balance if it says it did not.
        fallback: AbortFallback,
    },
    /// The abort went unanswered past its bound: automation stops (the abort is parked) and the
    /// balance stays in transit until an operator resolves the transfer, or a late answer does.
    NeedsOperator {
        /// What happens to the balance if the transfer-in bureau credited after all.
        balance: BalanceRoute,
        /// What happens to the balance if it did not.
        fallback: AbortFallback,
    },
    /// The destination region is not connected to the national platform (未接入) and the person
    /// did not ask for the payout: the application waits, the balance and the years stay where
    /// they are, until the region joins the platform (then the transfer proceeds as if applied
    /// that day).
    AwaitingConnection,
    /// The region's review takes time: the application waits, nothing moved, until the review
    /// is decided on `due_on` (then it proceeds as reviewed that day, or is refused).
    UnderReview {
        /// The day the review is decided.
        due_on: NaiveDate,
    },
    /// The fund leg: the form was credited (the years); the balance waits in transit for the
    /// remittance day the driver recorded with the transfer.
    RemittanceDue,
    /// The fund leg: the remittance was sent; the balance is settled when the transfer-in bureau
    /// answers that it matched the form (its timer: the outbox's retry schedule).
    Remitted,
    /// The fund leg: the transfer-in bureau refused the remittance as short or over and holds
    /// it; the balance stays in transit until the remittance is returned (by its
    /// ReturnRemittance, or an operator who was told), then it is remitted again.
    RemittanceRefused,
    /// The balance is being paid to the person's bank account through the bank gateway.
    PayoutPending,
    /// Terminal: the transfer-in bureau credited, and any balance was settled to it.
    Completed,
    /// Terminal: the review refused the transfer; nothing moved.
    Rejected(RefusalReason),
    /// Terminal: the transfer did not happen after the review accepted it; any balance in
    /// transit went back to the personal account.
    Returned(RefusalReason),
    /// Terminal: the balance was paid to the person's bank account.
    PaidToBank,
}

/// What happens to the personal-account balance of a transfer whose form goes to the
/// transfer-in bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceRoute {
    /// The balance waits in transit and is settled to the transfer-in bureau on credit.
    MovesWithForm,
    /// The balance waits in transit and is paid to the bank once the form is credited
    /// (employee → resident with a payout policy, regions that pay out instead).
    ToBankAfterCredit,
    /// No money leaves the account (shared provincial account, kept usable, no account).
    StaysPut,
    /// The balance waits in transit and is remitted apart from the form on the region's
    /// remittance day (the fund leg, 划转); it is settled when the remittance matched.
    RemittedApart,
}

/// What happens to a balance in transit when the transfer-in bureau confirms an abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortFallback {
    /// The application named a bank account: pay the balance there.
    PayToBank,
    /// Otherwise the balance returns to the personal account at the transfer-out bureau.
    ReturnToAccount,
}

/// The outcome of the transfer-out review (审核) that opens a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// Deliver the form to the transfer-in bureau; the balance goes as `BalanceRoute` says.
    DeliverForm(BalanceRoute),
    /// The destination is not connected and the person asked for the payout (可申请), or a
    /// relocated retiree asked: pay the balance to the bank.
    PayToBankOnly,
    /// The destination is not connected and the person did not ask for the payout: wait until
    /// it joins the platform; nothing moves meanwhile.
    AwaitConnection,
    /// Not decided yet: the region's review takes time and is decided on `due_on`; nothing
    /// moves meanwhile.
    UnderReview {
        /// The day the review is decided.
        due_on: NaiveDate,
    },
    /// Refused, for this reason; nothing moves.
    Refused(RefusalReason),
}

/// Whether the transfer-in bureau says it credited, in its answer to an abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InCredit {
    /// It had credited: the transfer completes as if the form's answer had arrived.
    Credited,
    /// It did not, and now never will.
    NotCredited,
}

/// Something that happens to an open transfer at the transfer-out bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutEvent {
    /// The transfer-in bureau answered the form: credited.
    FormCredited,
    /// The transfer-in bureau answered the form: refused, for this reason.
    FormRefused(RefusalReason),
    /// The whole-process deadline passed without a credit (or an operator asked to abort).
    DeadlinePassed(AbortFallback),
    /// The transfer-in bureau answered the abort.
    AbortAnswered(InCredit),
    /// The bank gateway confirmed the payout.
    BankPaid,
    /// The abort's own bound passed without an answer (it could not be delivered).
    AbortOverdue,
    /// An operator resolved a transfer that needs one, recording what the transfer-in bureau
    /// confirmed to them: it credited, or it did not and never will.
    OperatorResolved(InCredit),
    /// A waiting application was reviewed again once its destination joined the platform, with
    /// this outcome.
    Resumed(Review),
    /// The review day of a transfer under review came: it was reviewed with the facts of that
    /// day, with this outcome.
    Reviewed(Review),
    /// The fund leg: the remittance day came.
    RemittanceDay,
    /// The fund leg: the transfer-in bureau checked the remittance against the form.
    RemittanceAnswered(RemittanceCheck),
    /// The fund leg: the transfer-in bureau returned the latest remittance it refused (退回),
    /// by its message or as an operator recorded.
    RemittanceReturned,
}

/// What the driver does after persisting a transition, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutAction {
    /// Journal: personal account → in transit, for the balance on the form.
    DebitAccountToTransit,
    /// Outbox: deliver the insurance information form (信息表) to the transfer-in bureau.
    SendForm,
    /// Journal: in transit → settled to the transfer-in bureau.
    SettleTransitToTransferIn,
    /// Journal: in transit → back to the personal account.
    ReverseTransitToAccount,
    /// Outbox: ask the bank gateway to pay the balance in transit (idempotent by transfer id).
    /// A request only: nothing is posted until the gateway confirms.
    PayTransitToBank,
    /// Journal: in transit → the person's bank account, once the gateway confirmed the payout.
    PostTransitToBank,
    /// Outbox: ask the transfer-in bureau to abort, and whether it credited.
    SendAbort,
    /// Outbox: stop sending the abort; it stays parked for an operator to retry.
    ParkAbort,
    /// Outbox: remit the balance in transit to the transfer-in bureau's fund (RemitBalance).
    SendRemittance,
}

impl OutState {
    /// Whether no event can change this state any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Rejected(_) | Self::Returned(_) | Self::PaidToBank
        )
    }

    /// The state's stable name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::InTransit { .. } => "IN_TRANSIT",
            Self::Aborting { .. } => "ABORTING",
            Self::NeedsOperator { .. } => "NEEDS_OPERATOR",
            Self::AwaitingConnection => "AWAITING_CONNECTION",
            Self::UnderReview { .. } => "UNDER_REVIEW",
            Self::RemittanceDue => "REMITTANCE_DUE",
            Self::Remitted => "REMITTED",
            Self::RemittanceRefused => "REMITTANCE_REFUSED",
            Self::PayoutPending => "PAYOUT_PENDING",
            Self::Completed => "COMPLETED",
            Self::Rejected(_) => "REJECTED",
            Self::Returned(_) => "RETURNED",
            Self::PaidToBank => "PAID_TO_BANK",
        }
    }
}

impl OutEvent {
    /// The event's stable name, as stored in the history.
    pub fn name(self) -> &'static str {
        match self {
            Self::FormCredited => "FORM_CREDITED",
            Self::FormRefused(_) => "FORM_REFUSED",
            Self::DeadlinePassed(_) => "DEADLINE_PASSED",
            Self::AbortAnswered(_) => "ABORT_ANSWERED",
            Self::BankPaid => "BANK_PAID",
            Self::AbortOverdue => "ABORT_OVERDUE",
            Self::OperatorResolved(_) => "OPERATOR_RESOLVED",
            Self::Resumed(_) => "RESUMED",
            Self::Reviewed(_) => "REVIEWED",
            Self::RemittanceDay => "REMITTANCE_DAY",
            Self::RemittanceAnswered(_) => "REMITTANCE_ANSWERED",
            Self::RemittanceReturned => "REMITTANCE_RETURNED",
        }
    }
}

/// Opens a transfer at the transfer-out bureau from the outcome of its review.
pub fn open(review: Review) -> Transition<OutState, OutAction> {
    use OutAction::*;
    match review {
        Review::Refused(reason) => Transition::to(OutState::Rejected(reason), vec![]),
        Review::AwaitConnection => Transition::to(OutState::AwaitingConnection, vec![]),
        Review::UnderReview { due_on } => Transition::to(OutState::UnderReview { due_on }, vec![]),
        Review::PayToBankOnly => Transition::to(
            OutState::PayoutPending,
            vec![DebitAccountToTransit, PayTransitToBank],
        ),
        Review::DeliverForm(balance) => {
            let actions = match balance {
                BalanceRoute::StaysPut => vec![SendForm],
                BalanceRoute::MovesWithForm
                | BalanceRoute::ToBankAfterCredit
                | BalanceRoute::RemittedApart => vec![DebitAccountToTransit, SendForm],
            };
            Transition::to(OutState::InTransit { balance }, actions)
        }
    }
}

/// Applies one event to a transfer at the transfer-out bureau.
pub fn apply(
    state: OutState,
    event: OutEvent,
) -> Result<Transition<OutState, OutAction>, IllegalEvent> {
    use OutAction::*;
    if state.is_terminal() {
        return Ok(Transition::stay(state));
    }
    let illegal = || IllegalEvent {
        state: state.name(),
        event: event.name(),
    };
    if matches!(
        state,
        OutState::RemittanceDue | OutState::Remitted | OutState::RemittanceRefused
    ) {
        return remitting(state, event).ok_or_else(illegal);
    }
    match (state, event) {
        // The form's own answer may arrive after the abort was sent (it was queued first); it
        // is as good an answer as the abort's. A late answer resolves a transfer waiting for an
        // operator just as well, and so does the operator's record of what they were told.
        (OutState::InTransit { balance }, OutEvent::FormCredited)
        | (
            OutState::Aborting { balance, .. } | OutState::NeedsOperator { balance, .. },
            OutEvent::FormCredited | OutEvent::AbortAnswered(InCredit::Credited),
        )
        | (
            OutState::NeedsOperator { balance, .. },
            OutEvent::OperatorResolved(InCredit::Credited),
        ) => Ok(credited(balance)),
        (OutState::InTransit { balance }, OutEvent::FormRefused(reason)) => {
            Ok(Transition::to(OutState::Returned(reason), reverse(balance)))
        }
        (OutState::InTransit { balance }, OutEvent::DeadlinePassed(fallback)) => Ok(
            Transition::to(OutState::Aborting { balance, fallback }, vec![SendAbort]),
        ),
        // A refused form will never be credited: as good as an abort answered "not credited".
        (
            OutState::Aborting { balance, fallback }
            | OutState::NeedsOperator { balance, fallback },
            OutEvent::AbortAnswered(InCredit::NotCredited) | OutEvent::FormRefused(_),
        )
        | (
            OutState::NeedsOperator { balance, fallback },
            OutEvent::OperatorResolved(InCredit::NotCredited),
        ) => Ok(not_credited(balance, fallback)),
        (OutState::Aborting { balance, fallback }, OutEvent::AbortOverdue) => Ok(Transition::to(
            OutState::NeedsOperator { balance, fallback },
            vec![ParkAbort],
        )),
        // A repeated deadline while the abort is under way, or while an operator is awaited,
        // changes nothing: waiting longer is no proof.
        (
            OutState::Aborting { .. } | OutState::NeedsOperator { .. },
            OutEvent::DeadlinePassed(_),
        )
        | (OutState::NeedsOperator { .. }, OutEvent::AbortOverdue) => Ok(Transition::stay(state)),
        // Reviewed again: it proceeds as if opened today (or, still not connected, waits on).
        (OutState::AwaitingConnection, OutEvent::Resumed(review)) => Ok(open(review)),
        // The review day came: it opens as reviewed that day (a review that is still not
        // decided, a later day; a repeated review day, before any form, the same).
        (OutState::UnderReview { .. }, OutEvent::Reviewed(review)) => Ok(open(review)),
        (OutState::PayoutPending, OutEvent::BankPaid) => Ok(Transition::to(
            OutState::PaidToBank,
            vec![PostTransitToBank],
        )),
        _ => Err(illegal()),
    }
}

/// An event of the fund leg once the form was credited; `None` when it is out of place.
fn remitting(state: OutState, event: OutEvent) -> Option<Transition<OutState, OutAction>> {
    match (state, event) {
        (OutState::RemittanceDue, OutEvent::RemittanceDay) => Some(Transition::to(
            OutState::Remitted,
            vec![OutAction::SendRemittance],
        )),
        (OutState::Remitted, OutEvent::RemittanceAnswered(RemittanceCheck::Matches)) => {
            Some(Transition::to(
                OutState::Completed,
                vec![OutAction::SettleTransitToTransferIn],
            ))
        }
        // The transfer-in bureau refused the money and holds it: it waits to be returned, the
        // balance still in transit here.
        (
            OutState::Remitted,
            OutEvent::RemittanceAnswered(RemittanceCheck::Short | RemittanceCheck::Over),
        ) => Some(Transition::to(OutState::RemittanceRefused, vec![])),
        // Returned (its refusal's answer may not have come yet): remit again, a new message.
        (OutState::Remitted | OutState::RemittanceRefused, OutEvent::RemittanceReturned) => Some(
            Transition::to(OutState::Remitted, vec![OutAction::SendRemittance]),
        ),
        // The credit is known: a repeated answer, a late abort answer, the whole-process
        // deadline, a repeated remittance day or refusal, or a return of a remittance not yet
        // sent (an earlier one's) change nothing.
        (
            _,
            OutEvent::FormCredited
            | OutEvent::AbortAnswered(InCredit::Credited)
            | OutEvent::DeadlinePassed(_),
        )
        | (OutState::Remitted | OutState::RemittanceRefused, OutEvent::RemittanceDay)
        | (
            OutState::RemittanceRefused,
            OutEvent::RemittanceAnswered(RemittanceCheck::Short | RemittanceCheck::Over),
        )
        | (OutState::RemittanceDue, OutEvent::RemittanceReturned) => Some(Transition::stay(state)),
        _ => None,
    }
}

/// The transfer-in bureau did not credit and never will: the balance returns to the account,
/// or goes to the bank when the application named an account.
fn not_credited(balance: BalanceRoute, fallback: AbortFallback) -> Transition<OutState, OutAction> {
    match (balance, fallback) {
        (BalanceRoute::StaysPut, _) | (_, AbortFallback::ReturnToAccount) => {
            Transition::to(OutState::Returned(RefusalReason::Aborted), reverse(balance))
        }
        (_, AbortFallback::PayToBank) => {
            Transition::to(OutState::PayoutPending, vec![OutAction::PayTransitToBank])
        }
    }
}

fn credited(balance: BalanceRoute) -> Transition<OutState, OutAction> {
    use OutAction::*;
    match balance {
        BalanceRoute::MovesWithForm => {
            Transition::to(OutState::Completed, vec![SettleTransitToTransferIn])
        }
        BalanceRoute::StaysPut => Transition::to(OutState::Completed, vec![]),
        BalanceRoute::RemittedApart => Transition::to(OutState::RemittanceDue, vec![]),
        BalanceRoute::ToBankAfterCredit => {
            Transition::to(OutState::PayoutPending, vec![PayTransitToBank])
        }
    }
}

fn reverse(balance: BalanceRoute) -> Vec<OutAction> {
    match balance {
        BalanceRoute::StaysPut => vec![],
        BalanceRoute::MovesWithForm
        | BalanceRoute::ToBankAfterCredit
        | BalanceRoute::RemittedApart => vec![OutAction::ReverseTransitToAccount],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_reason() -> impl Strategy<Value = RefusalReason> {
        proptest::sample::select(RefusalReason::ALL.to_vec())
    }

    fn any_route() -> impl Strategy<Value = BalanceRoute> {
        proptest::sample::select(vec![
            BalanceRoute::MovesWithForm,
            BalanceRoute::ToBankAfterCredit,
            BalanceRoute::StaysPut,
            BalanceRoute::RemittedApart,
        ])
    }

    fn any_fallback() -> impl Strategy<Value = AbortFallback> {
        proptest::sample::select(vec![
            AbortFallback::PayToBank,
            AbortFallback::ReturnToAccount,
        ])
    }

    fn any_review() -> impl Strategy<Value = Review> {
        prop_oneof![
            any_route().prop_map(Review::DeliverForm),
            Just(Review::PayToBankOnly),
            any_reason().prop_map(Review::Refused),
            Just(Review::UnderReview {
                due_on: NaiveDate::from_ymd_opt(2026, 3, 16).expect("a day")
            }),
        ]
    }

    fn any_event() -> impl Strategy<Value = OutEvent> {
        prop_oneof![
            Just(OutEvent::FormCredited),
            any_reason().prop_map(OutEvent::FormRefused),
            any_fallback().prop_map(OutEvent::DeadlinePassed),
            Just(OutEvent::AbortAnswered(InCredit::Credited)),
            Just(OutEvent::AbortAnswered(InCredit::NotCredited)),
            Just(OutEvent::BankPaid),
            Just(OutEvent::AbortOverdue),
            Just(OutEvent::OperatorResolved(InCredit::Credited)),
            Just(OutEvent::OperatorResolved(InCredit::NotCredited)),
            any_review().prop_map(OutEvent::Reviewed),
            any_review().prop_map(OutEvent::Resumed),
            Just(OutEvent::RemittanceDay),
            Just(OutEvent::RemittanceAnswered(RemittanceCheck::Matches)),
            Just(OutEvent::RemittanceAnswered(RemittanceCheck::Short)),
            Just(OutEvent::RemittanceAnswered(RemittanceCheck::Over)),
            Just(OutEvent::RemittanceReturned),
        ]
    }

    /// Counts the balance in transit as the actions move it: +1 on debit, -1 on each way out.
    /// A payout *request* moves nothing; its confirmation's posting does.
    fn transit_after(actions: &[OutAction], mut in_transit: i32) -> i32 {
        for action in actions {
            match action {
                OutAction::DebitAccountToTransit => in_transit += 1,
                OutAction::SettleTransitToTransferIn
                | OutAction::ReverseTransitToAccount
                | OutAction::PostTransitToBank => in_transit -= 1,
                OutAction::PayTransitToBank
                | OutAction::SendForm
                | OutAction::SendAbort
                | OutAction::ParkAbort
                | OutAction::SendRemittance => {}
            }
        }
        in_transit
    }

    #[test]
    fn not_connected_a_waiting_application_moves_nothing_until_its_region_joins() {
        let waiting = open(Review::AwaitConnection);
        assert_eq!(waiting.next, OutState::AwaitingConnection);
        assert!(
            waiting.actions.is_empty(),
            "the balance stays in the account"
        );
        assert!(!OutState::AwaitingConnection.is_terminal());
        let still = apply(
            OutState::AwaitingConnection,
            OutEvent::Resumed(Review::AwaitConnection),
        )
        .expect("legal");
        assert_eq!(still.next, OutState::AwaitingConnection);
        let joined = apply(
            OutState::AwaitingConnection,
            OutEvent::Resumed(Review::DeliverForm(BalanceRoute::MovesWithForm)),
        )
        .expect("legal");
        assert_eq!(
            joined.next,
            OutState::InTransit {
                balance: BalanceRoute::MovesWithForm
            }
        );
        assert_eq!(
            joined.actions,
            vec![OutAction::DebitAccountToTransit, OutAction::SendForm]
        );
        assert!(apply(OutState::AwaitingConnection, OutEvent::FormCredited).is_err());
    }

    #[test]
    fn under_review_nothing_moves_until_the_review_day_decides() {
        let due_on = NaiveDate::from_ymd_opt(2026, 3, 16).expect("a day");
        let waiting = open(Review::UnderReview { due_on });
        assert_eq!(waiting.next, OutState::UnderReview { due_on });
        assert!(waiting.actions.is_empty(), "no debit, no form");
        assert!(!waiting.next.is_terminal());
        let accepted = apply(
            waiting.next,
            OutEvent::Reviewed(Review::DeliverForm(BalanceRoute::MovesWithForm)),
        )
        .expect("legal");
        assert_eq!(
            accepted.actions,
            vec![OutAction::DebitAccountToTransit, OutAction::SendForm],
            "the balance leaves the account only when the form goes"
        );
        let refused = apply(
            waiting.next,
            OutEvent::Reviewed(Review::Refused(RefusalReason::Arrears)),
        )
        .expect("legal");
        assert_eq!(refused.next, OutState::Rejected(RefusalReason::Arrears));
        assert!(refused.actions.is_empty());
    }

    #[test]
    fn under_review_answers_credits_aborts_and_payouts_are_out_of_place() {
        let waiting = OutState::UnderReview {
            due_on: NaiveDate::from_ymd_opt(2026, 3, 16).expect("a day"),
        };
        for event in [
            OutEvent::FormCredited,
            OutEvent::FormRefused(RefusalReason::Aborted),
            OutEvent::DeadlinePassed(AbortFallback::ReturnToAccount),
            OutEvent::AbortAnswered(InCredit::NotCredited),
            OutEvent::BankPaid,
            OutEvent::AbortOverdue,
            OutEvent::OperatorResolved(InCredit::Credited),
            OutEvent::Resumed(Review::PayToBankOnly),
        ] {
            let error = apply(waiting, event).expect_err("out of place");
            assert_eq!(error.state, "UNDER_REVIEW");
        }
        assert!(
            apply(
                OutState::AwaitingConnection,
                OutEvent::Reviewed(Review::PayToBankOnly)
            )
            .is_err()
        );
        let done = apply(
            OutState::Completed,
            OutEvent::Reviewed(Review::PayToBankOnly),
        )
        .expect("terminal states absorb");
        assert_eq!(done.next, OutState::Completed);
        assert!(done.actions.is_empty());
    }

    #[test]
    fn a_connected_transfer_debits_then_settles_on_credit() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        assert_eq!(
            opened.actions,
            vec![OutAction::DebitAccountToTransit, OutAction::SendForm]
        );
        let done = apply(opened.next, OutEvent::FormCredited).expect("legal");
        assert_eq!(done.next, OutState::Completed);
        assert_eq!(done.actions, vec![OutAction::SettleTransitToTransferIn]);
    }

    #[test]
    fn a_refused_form_returns_the_balance_to_the_account() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        let refused = RefusalReason::NotEnrolledAtTransferIn;
        let done = apply(opened.next, OutEvent::FormRefused(refused)).expect("legal");
        assert_eq!(done.next, OutState::Returned(refused));
        assert_eq!(done.actions, vec![OutAction::ReverseTransitToAccount]);
    }

    #[test]
    fn a_bank_payout_after_delivery_needs_an_abort_answered_not_credited() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        let aborting = apply(
            opened.next,
            OutEvent::DeadlinePassed(AbortFallback::PayToBank),
        )
        .expect("legal");
        assert_eq!(aborting.actions, vec![OutAction::SendAbort]);
        // Waiting longer is no proof: another deadline does not pay out.
        let again = apply(
            aborting.next,
            OutEvent::DeadlinePassed(AbortFallback::PayToBank),
        )
        .expect("legal");
        assert!(again.actions.is_empty());
        assert!(apply(aborting.next, OutEvent::BankPaid).is_err());
        let answered = apply(
            aborting.next,
            OutEvent::AbortAnswered(InCredit::NotCredited),
        )
        .expect("legal");
        assert_eq!(answered.next, OutState::PayoutPending);
        assert_eq!(answered.actions, vec![OutAction::PayTransitToBank]);
    }

    #[test]
    fn an_abort_answered_credited_completes_the_transfer() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        let aborting = apply(
            opened.next,
            OutEvent::DeadlinePassed(AbortFallback::ReturnToAccount),
        )
        .expect("legal");
        let answered =
            apply(aborting.next, OutEvent::AbortAnswered(InCredit::Credited)).expect("legal");
        assert_eq!(answered.next, OutState::Completed);
    }

    #[test]
    fn a_form_answer_that_overtakes_the_abort_answer_settles_the_transfer() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        let aborting = apply(
            opened.next,
            OutEvent::DeadlinePassed(AbortFallback::PayToBank),
        )
        .expect("legal");
        let credited = apply(aborting.next, OutEvent::FormCredited).expect("legal");
        assert_eq!(credited.next, OutState::Completed);
        let refused =
            apply(aborting.next, OutEvent::FormRefused(RefusalReason::Aborted)).expect("legal");
        assert_eq!(refused.next, OutState::PayoutPending);
        assert_eq!(refused.actions, vec![OutAction::PayTransitToBank]);
        // The abort's answer, arriving later, changes nothing.
        let late = apply(
            credited.next,
            OutEvent::AbortAnswered(InCredit::NotCredited),
        )
        .expect("legal");
        assert!(late.actions.is_empty());
    }

    #[test]
    fn an_abort_overdue_waits_for_an_operator_with_the_balance_in_transit() {
        let opened = open(Review::DeliverForm(BalanceRoute::MovesWithForm));
        let aborting = apply(
            opened.next,
            OutEvent::DeadlinePassed(AbortFallback::ReturnToAccount),
        )
        .expect("legal");
        let parked = apply(aborting.next, OutEvent::AbortOverdue).expect("legal");
        assert_eq!(
            parked.next,
            OutState::NeedsOperator {
                balance: BalanceRoute::MovesWithForm,
                fallback: AbortFallback::ReturnToAccount,
            }
        );
        assert_eq!(parked.actions, vec![OutAction::ParkAbort]);
        assert!(!parked.next.is_terminal(), "the person stays blocked");
        for waiting in [
            OutEvent::AbortOverdue,
            OutEvent::DeadlinePassed(AbortFallback::PayToBank),
        ] {
            let again = apply(parked.next, waiting).expect("legal");
            assert_eq!(again.next, parked.next, "waiting is no proof");
            assert!(again.actions.is_empty());
        }
        assert!(apply(parked.next, OutEvent::BankPaid).is_err());
        let returned = apply(
            parked.next,
            OutEvent::OperatorResolved(InCredit::NotCredited),
        )
        .expect("legal");
        assert_eq!(returned.next, OutState::Returned(RefusalReason::Aborted));
        assert_eq!(returned.actions, vec![OutAction::ReverseTransitToAccount]);
        let completed =
            apply(parked.next, OutEvent::OperatorResolved(InCredit::Credited)).expect("legal");
        assert_eq!(completed.next, OutState::Completed);
        assert_eq!(
            completed.actions,
            vec![OutAction::SettleTransitToTransferIn]
        );
        let late = apply(parked.next, OutEvent::AbortAnswered(InCredit::Credited)).expect("legal");
        assert_eq!(
            late.next,
            OutState::Completed,
            "a late answer resolves it too"
        );
    }

    #[test]
    fn only_a_transfer_waiting_for_an_operator_can_be_resolved_by_one() {
        let in_transit = open(Review::DeliverForm(BalanceRoute::MovesWithForm)).next;
        let aborting = OutState::Aborting {
            balance: BalanceRoute::MovesWithForm,
            fallback: AbortFallback::PayToBank,
        };
        for state in [in_transit, aborting, OutState::PayoutPending] {
            let error = apply(state, OutEvent::OperatorResolved(InCredit::NotCredited))
                .expect_err("no operator is awaited");
            assert_eq!(error.event, "OPERATOR_RESOLVED");
        }
        assert!(apply(in_transit, OutEvent::AbortOverdue).is_err());
    }

    #[test]
    fn a_shared_account_transfer_moves_no_money() {
        let opened = open(Review::DeliverForm(BalanceRoute::StaysPut));
        assert_eq!(opened.actions, vec![OutAction::SendForm]);
        let done = apply(opened.next, OutEvent::FormCredited).expect("legal");
        assert!(done.actions.is_empty(), "nothing to settle or send");
    }

    #[test]
    fn a_not_connected_destination_pays_the_bank_at_once() {
        let opened = open(Review::PayToBankOnly);
        assert_eq!(opened.next, OutState::PayoutPending);
        let done = apply(opened.next, OutEvent::BankPaid).expect("legal");
        assert_eq!(done.next, OutState::PaidToBank);
    }

    #[test]
    fn a_bank_payout_is_posted_as_an_action_once_the_gateway_confirms() {
        let opened = open(Review::PayToBankOnly);
        assert_eq!(
            opened.actions,
            vec![
                OutAction::DebitAccountToTransit,
                OutAction::PayTransitToBank
            ],
            "the payout is requested, not posted"
        );
        let paid = apply(opened.next, OutEvent::BankPaid).expect("legal");
        assert_eq!(paid.actions, vec![OutAction::PostTransitToBank]);
        let again = apply(paid.next, OutEvent::BankPaid).expect("legal");
        assert!(
            again.actions.is_empty(),
            "a repeated confirmation posts nothing"
        );
    }

    #[test]
    fn states_and_their_data_survive_a_serde_round_trip() {
        let states = [
            OutState::InTransit {
                balance: BalanceRoute::ToBankAfterCredit,
            },
            OutState::Aborting {
                balance: BalanceRoute::MovesWithForm,
                fallback: AbortFallback::PayToBank,
            },
            OutState::NeedsOperator {
                balance: BalanceRoute::ToBankAfterCredit,
                fallback: AbortFallback::ReturnToAccount,
            },
            OutState::UnderReview {
                due_on: NaiveDate::from_ymd_opt(2026, 3, 16).expect("a day"),
            },
            OutState::PayoutPending,
            OutState::Completed,
            OutState::Rejected(RefusalReason::Arrears),
            OutState::Returned(RefusalReason::Aborted),
            OutState::PaidToBank,
        ];
        for state in states {
            let text = serde_json::to_string(&state).expect("serialises");
            let back: OutState = serde_json::from_str(&text).expect("deserialises");
            assert_eq!(back, state, "{text}");
        }
        let text = serde_json::to_string(&OutState::Aborting {
            balance: BalanceRoute::StaysPut,
            fallback: AbortFallback::ReturnToAccount,
        })
        .expect("serialises");
        assert_eq!(
            text,
            r#"{"aborting":{"balance":"stays_put","fallback":"return_to_account"}}"#
        );
    }

    #[test]
    fn an_event_out_of_place_is_an_error_not_a_panic() {
        let error = apply(OutState::PayoutPending, OutEvent::FormCredited).expect_err("illegal");
        assert_eq!(error.state, "PAYOUT_PENDING");
        assert_eq!(error.event, "FORM_CREDITED");
    }

    proptest! {
        #[test]
        fn terminal_states_absorb_every_event(review in any_review(), events in prop::collection::vec(any_event(), 0..12)) {
            let mut state = open(review).next;
            for event in events {
                let was_terminal = state.is_terminal();
                if let Ok(transition) = apply(state, event) {
                    if was_terminal {
                        prop_assert_eq!(transition.next, state);
                        prop_assert!(transition.actions.is_empty());
                    }
                    state = transition.next;
                }
            }
        }

        #[test]
        fn a_balance_is_remitted_again_only_after_its_last_remittance_came_back(review in any_review(), events in prop::collection::vec(any_event(), 0..16)) {
            let mut state = open(review).next;
            let mut outstanding = false;
            for event in events {
                if let Ok(transition) = apply(state, event) {
                    if event == OutEvent::RemittanceReturned && !transition.actions.is_empty() {
                        outstanding = false;
                    }
                    for action in &transition.actions {
                        if *action == OutAction::SendRemittance {
                            prop_assert!(!outstanding, "a second remittance while one is out: {state:?} {event:?}");
                            outstanding = true;
                        }
                    }
                    state = transition.next;
                }
            }
        }

        #[test]
        fn the_balance_in_transit_is_resolved_exactly_once(review in any_review(), events in prop::collection::vec(any_event(), 0..12)) {
            let opened = open(review);
            let mut state = opened.next;
            let mut in_transit = transit_after(&opened.actions, 0);
            for event in events {
                if let Ok(transition) = apply(state, event) {
                    in_transit = transit_after(&transition.actions, in_transit);
                    state = transition.next;
                }
                prop_assert!((0..=1).contains(&in_transit), "in transit {in_transit} in {state:?}");
            }
            if state.is_terminal() {
                prop_assert_eq!(in_transit, 0, "terminal {:?} left money in transit", state);
            }
        }

        #[test]
        fn a_payout_is_requested_at_most_once_and_before_it_is_posted(review in any_review(), events in prop::collection::vec(any_event(), 0..12)) {
            let opened = open(review);
            let mut state = opened.next;
            let mut actions = opened.actions;
            for event in events {
                if let Ok(transition) = apply(state, event) {
                    actions.extend(transition.actions);
                    state = transition.next;
                }
            }
            let position = |wanted| actions.iter().position(|action| *action == wanted);
            let count = |wanted| actions.iter().filter(|action| **action == wanted).count();
            prop_assert!(count(OutAction::PayTransitToBank) <= 1, "{:?}", actions);
            prop_assert!(count(OutAction::PostTransitToBank) <= 1, "{:?}", actions);
            if let Some(posted) = position(OutAction::PostTransitToBank) {
                let requested = position(OutAction::PayTransitToBank);
                prop_assert!(requested.is_some_and(|requested| requested < posted), "{:?}", actions);
            }
            if state == OutState::PayoutPending || state == OutState::PaidToBank {
                prop_assert_eq!(count(OutAction::PayTransitToBank), 1, "{:?}", actions);
            }
            prop_assert_eq!(
                count(OutAction::PostTransitToBank) == 1,
                state == OutState::PaidToBank,
                "{:?}", actions
            );
        }
    }

    #[test]
    fn a_balance_remitted_apart_is_settled_only_on_a_matching_remittance() {
        let opened = open(Review::DeliverForm(BalanceRoute::RemittedApart));
        assert_eq!(
            opened.actions,
            vec![OutAction::DebitAccountToTransit, OutAction::SendForm]
        );
        let credited = apply(opened.next, OutEvent::FormCredited).expect("legal");
        assert_eq!(credited.next, OutState::RemittanceDue);
        assert!(credited.actions.is_empty(), "nothing settles on the years");
        let waiting = apply(
            credited.next,
            OutEvent::DeadlinePassed(AbortFallback::PayToBank),
        )
        .expect("legal");
        assert_eq!(waiting.next, OutState::RemittanceDue, "the credit is known");
        let sent = apply(credited.next, OutEvent::RemittanceDay).expect("legal");
        assert_eq!(sent.next, OutState::Remitted);
        assert_eq!(sent.actions, vec![OutAction::SendRemittance]);
        let again = apply(sent.next, OutEvent::RemittanceDay).expect("legal");
        assert!(again.actions.is_empty(), "remitted once");
        let done = apply(
            sent.next,
            OutEvent::RemittanceAnswered(RemittanceCheck::Matches),
        )
        .expect("legal");
        assert_eq!(done.next, OutState::Completed);
        assert_eq!(done.actions, vec![OutAction::SettleTransitToTransferIn]);
    }

    #[test]
    fn a_remittance_refused_as_short_leaves_the_balance_in_transit_for_an_operator() {
        for check in [RemittanceCheck::Short, RemittanceCheck::Over] {
            let held =
                apply(OutState::Remitted, OutEvent::RemittanceAnswered(check)).expect("legal");
            assert_eq!(held.next, OutState::RemittanceRefused);
            assert_eq!(
                crate::transfer::TransferState::Out(held.next).stage(),
                crate::transfer::Stage::NeedsOperator
            );
            assert!(held.actions.is_empty(), "nothing settles, nothing returns");
            for event in [
                OutEvent::OperatorResolved(InCredit::Credited),
                OutEvent::OperatorResolved(InCredit::NotCredited),
                OutEvent::RemittanceAnswered(RemittanceCheck::Matches),
                OutEvent::FormRefused(RefusalReason::Aborted),
            ] {
                let error = apply(held.next, event).expect_err("the years are credited there");
                assert_eq!(error.state, "REMITTANCE_REFUSED");
            }
        }
    }

    #[test]
    fn a_refused_remittance_is_sent_again_only_once_it_was_returned() {
        let again =
            apply(OutState::RemittanceRefused, OutEvent::RemittanceReturned).expect("legal");
        assert_eq!(again.next, OutState::Remitted);
        assert_eq!(again.actions, vec![OutAction::SendRemittance]);
        let waiting = apply(OutState::RemittanceRefused, OutEvent::RemittanceDay).expect("legal");
        assert!(waiting.actions.is_empty(), "no timer remits it again");
        let lost_answer = apply(OutState::Remitted, OutEvent::RemittanceReturned).expect("legal");
        assert_eq!(lost_answer.actions, vec![OutAction::SendRemittance]);
        let early = apply(OutState::RemittanceDue, OutEvent::RemittanceReturned).expect("legal");
        assert!(early.actions.is_empty(), "nothing of ours was returned");
        let done = apply(OutState::Completed, OutEvent::RemittanceReturned).expect("absorbed");
        assert!(done.actions.is_empty());
        let settled = apply(
            again.next,
            OutEvent::RemittanceAnswered(RemittanceCheck::Matches),
        )
        .expect("legal");
        assert_eq!(settled.next, OutState::Completed);
        assert_eq!(settled.actions, vec![OutAction::SettleTransitToTransferIn]);
    }

    #[test]
    fn remittance_events_out_of_place_are_errors() {
        let early = apply(
            OutState::InTransit {
                balance: BalanceRoute::RemittedApart,
            },
            OutEvent::RemittanceDay,
        )
        .expect_err("the form is not credited yet");
        assert_eq!(early.event, "REMITTANCE_DAY");
        let unasked = apply(
            OutState::RemittanceDue,
            OutEvent::RemittanceAnswered(RemittanceCheck::Matches),
        )
        .expect_err("no remittance was sent");
        assert_eq!(unasked.state, "REMITTANCE_DUE");
        let refused = apply(
            OutState::Remitted,
            OutEvent::FormRefused(RefusalReason::Arrears),
        )
        .expect_err("the form was credited");
        assert_eq!(refused.state, "REMITTED");
    }
}
