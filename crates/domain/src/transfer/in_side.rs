//! The transfer-in bureau's state machine (转入地).
//!
//! ```text
//! apply ──▶ Applied ──request accepted──▶ Requested ──form credited──▶ Completed
//!              │  └──request refused──▶ Rejected          │          (abort: stays, "credited")
//!              └──────form credited / refused / abort─────┴──▶ Completed | Rejected | Aborted
//! form first (transfer-out initiated) ──▶ Completed | Rejected
//!
//! timers:  Applied | Requested ──form overdue──▶ Querying (QueryTransferOut)
//!          Querying ──answer: unknown / refused──▶ Rejected    ──answer: paid out──▶ Aborted
//!          Applied | Requested | Querying ──deadline──▶ Rejected(DEADLINE_EXPIRED)
//!          Credited ──deadline──▶ Completed
//!
//! fund leg (the form says a remittance follows, 划转):
//!          form accepted ──▶ AwaitingFunds (years credited)
//!          AwaitingFunds | FundsHeld ──remittance matches──▶ Completed (balance credited)
//!          AwaitingFunds | FundsHeld ──remittance short / over──▶ FundsHeld (held in suspense)
//!          AwaitingFunds ──remittance deadline──▶ FundsHeld(Overdue)
//!          FundsHeld(Short | Over) ──operator returns the held money──▶ AwaitingFunds (退回)
//!          FundsHeld(Short | Over) ──remittance matches──▶ Completed (held money returned too)
//! ```
//!
//! With a separate remittance (the transfer-out region's `remittance` policy, `crate::remittance`)
//! the form credits the years only; the balance is credited when the remittance arrives and
//! matches the form to the cent. A short or over remittance is refused: nothing is credited and
//! the money is held apart (a suspense account) for an operator, who sees `FundsHeld` and why.
//! `FundsHeld` waits for an operator (as the transfer-out side's `NeedsOperator` does), and a
//! corrected or late remittance that matches still completes it.
//!
//! A wrong remittance is returned whole, never topped up (退回重拨): the operator's
//! [`InEvent::HeldReturned`] sends the held money back to the transfer-out region's fund
//! ([`InAction::ReturnHeld`]: the journal, and a ReturnRemittance message that makes the
//! transfer-out bureau remit again) and the transfer waits for funds again. A matching remittance
//! arriving while wrong money is held is credited and the held money returned in the same step,
//! so no transfer ends with money in suspense. Money is held exactly in the states
//! `FundsHeld(Short | Over)`.
//!
//! The credit completes the transfer here: the answer to the form is the receipt (回执) the
//! transfer-out bureau settles on, and nothing the transfer-in bureau does waits for that.
//! (`Credited`, waiting for a settlement confirmation, is kept for transfers stored before the
//! confirmation was dropped; a confirmation completes them.)
//!
//! The form may overtake the answer to the request (the transfer-out bureau accepts, sends the
//! form, and the form arrives before the acceptance is processed), so `Applied` accepts the form
//! too, and a late acceptance after the credit changes nothing. Once `Aborted`, a form is never
//! credited: that promise is what lets the transfer-out bureau pay the balance elsewhere.
//!
//! Nothing waits forever. Once the form is overdue (the transfer-out bureau's 10 working days
//! passed) the bureau asks the transfer-out bureau where the transfer stands (`Querying`), and
//! ends it when the answer says it never will go on (unknown there, refused there, paid out
//! there); once the whole-process deadline passed it ends it itself (`Rejected` with
//! `DEADLINE_EXPIRED`). Every ending before a credit is terminal, so a form arriving later is
//! refused exactly as after an abort, and the transfer-out bureau returns the balance.

use serde::{Deserialize, Serialize};

use super::{IllegalEvent, RefusalReason, Stage, Transition};
pub use crate::remittance::RemittanceCheck;

/// Where a transfer stands at the transfer-in bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InState {
    /// The person applied here; the request to the transfer-out bureau is on its way.
    Applied,
    /// The transfer-out bureau accepted and is preparing the form.
    Requested,
    /// The request or the form is overdue: the transfer-out bureau was asked where the transfer
    /// stands; its answer or the whole-process deadline ends the transfer (a form or an abort
    /// arriving meanwhile is handled as in `Requested`).
    Querying,
    /// The form was checked and credited, and a settlement confirmation is awaited: only in
    /// transfers stored by earlier versions, which waited for one.
    Credited,
    /// The form was checked and its years credited; the balance waits for the remittance
    /// between the fund accounts (划转), due by the remittance deadline.
    AwaitingFunds,
    /// The remittance did not match the form, or did not come by its deadline: the years are
    /// credited, the balance is not, and an operator sees why. A remittance that matches still
    /// completes the transfer.
    FundsHeld(FundsProblem),
    /// Terminal: the form was checked and the years and balance credited.
    Completed,
    /// Terminal: refused by either bureau; nothing was credited.
    Rejected(RefusalReason),
    /// Terminal: the transfer-out bureau aborted before any credit; nothing will be credited.
    Aborted,
}

/// Why the balance of a transfer waits for an operator at the transfer-in bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundsProblem {
    /// Less than the form's balance was remitted; it was refused and held.
    Short,
    /// More than the form's balance was remitted; it was refused and held.
    Over,
    /// No remittance came by the remittance deadline.
    Overdue,
}

impl FundsProblem {
    /// Whether remitted money is held in suspense for the transfer (a short or over
    /// remittance); an overdue one holds nothing.
    pub fn holds_money(self) -> bool {
        matches!(self, Self::Short | Self::Over)
    }
}

/// The transfer-in bureau's check (审核) of an arriving form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormCheck {
    /// The form is in order: credit years and balance.
    Accept,
    /// The form is in order and says its balance is remitted apart: credit the years now and
    /// wait for the remittance.
    AcceptYearsAwaitFunds,
    /// The form is refused, for this reason.
    Refuse(RefusalReason),
}

/// Something that happens to a transfer at the transfer-in bureau.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InEvent {
    /// The transfer-out bureau accepted the request.
    RequestAccepted,
    /// The transfer-out bureau refused the request.
    RequestRefused(RefusalReason),
    /// The insurance information form arrived and was checked.
    FormArrived(FormCheck),
    /// The transfer-out bureau confirmed it settled the balance (sent by earlier versions).
    SettlementConfirmed,
    /// The transfer-out bureau asked to abort.
    AbortArrived,
    /// The form's deadline (the transfer-out bureau's 10 working days) passed without it.
    FormOverdue,
    /// The transfer-out bureau answered the query about the transfer.
    TransferOutAnswered(TransferOutView),
    /// The whole-process deadline passed (15 working days from the application).
    DeadlinePassed,
    /// The remittance of the balance arrived and was checked against the form.
    RemittanceArrived(RemittanceCheck),
    /// The remittance deadline passed without a remittance.
    RemittanceOverdue,
    /// An operator returned the money held for a short or over remittance to the transfer-out
    /// region's fund (退回), so that it remits again.
    HeldReturned,
}

/// What the transfer-out bureau's answer to a query (QueryTransferOut) means here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutView {
    /// It does not know the transfer: the request never reached it.
    Unknown,
    /// It refused the transfer (or returned the balance), for this reason: no form will come.
    Refused(RefusalReason),
    /// It ended the transfer without a form for this bureau (paid the balance to the bank).
    EndedWithoutForm,
    /// It is still working on it (or says something this bureau cannot act on): keep waiting
    /// for the form, an abort, or the deadline.
    Open,
}

/// What the driver does after persisting a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InAction {
    /// Outbox: ask the transfer-out bureau for the transfer.
    SendTransferOutRequest,
    /// Journal and person record: credit the form's years (as deemed years) and balance.
    CreditForm,
    /// Person record: credit the form's years only (its balance is remitted apart).
    CreditYears,
    /// Journal: credit the remitted balance from the fund account to the personal account.
    CreditBalance,
    /// Journal: hold a remittance that does not match in the suspense account.
    HoldRemittance,
    /// Journal: the money held in suspense back to the transfer-out region's fund; outbox:
    /// tell the transfer-out bureau (ReturnRemittance), which remits again.
    ReturnHeld,
    /// Outbox: ask the transfer-out bureau where the transfer stands (QueryTransferOut).
    QueryTransferOut,
    /// Outbox: withdraw a request still queued (the transfer ended before it was answered).
    WithdrawRequest,
}

impl InState {
    /// Whether no event can change this state any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected(_) | Self::Aborted)
    }

    /// Whether the form has been credited here (the answer an abort gets).
    pub fn has_credited(self) -> bool {
        matches!(
            self,
            Self::Credited | Self::Completed | Self::AwaitingFunds | Self::FundsHeld(_)
        )
    }

    /// Whether the balance has been credited here (with the form, or on a matching remittance).
    pub fn has_credited_balance(self) -> bool {
        matches!(self, Self::Credited | Self::Completed)
    }

    /// The state's stable name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::Applied => "APPLIED",
            Self::Requested => "REQUESTED",
            Self::Querying => "QUERYING",
            Self::Credited => "CREDITED",
            Self::AwaitingFunds => "AWAITING_FUNDS",
            Self::FundsHeld(_) => "FUNDS_HELD",
            Self::Completed => "COMPLETED",
            Self::Rejected(_) => "REJECTED",
            Self::Aborted => "ABORTED",
        }
    }
}

impl InEvent {
    /// The event's stable name, as stored in the history.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestAccepted => "REQUEST_ACCEPTED",
            Self::RequestRefused(_) => "REQUEST_REFUSED",
            Self::FormArrived(_) => "FORM_ARRIVED",
            Self::SettlementConfirmed => "SETTLEMENT_CONFIRMED",
            Self::AbortArrived => "ABORT_ARRIVED",
            Self::FormOverdue => "FORM_OVERDUE",
            Self::TransferOutAnswered(_) => "TRANSFER_OUT_ANSWERED",
            Self::DeadlinePassed => "DEADLINE_PASSED",
            Self::RemittanceArrived(_) => "REMITTANCE_ARRIVED",
            Self::RemittanceOverdue => "REMITTANCE_OVERDUE",
            Self::HeldReturned => "HELD_RETURNED",
        }
    }
}

impl TransferOutView {
    /// Reads the transfer-out bureau's answer: the stage it reports and its refusal reason, or
    /// `None` when it does not know the transfer.
    pub fn of(answer: Option<(Stage, Option<RefusalReason>)>) -> Self {
        let Some((stage, refusal)) = answer else {
            return Self::Unknown;
        };
        match stage {
            Stage::Rejected | Stage::Returned | Stage::Aborted => {
                Self::Refused(refusal.unwrap_or(RefusalReason::Aborted))
            }
            Stage::PaidToBank => Self::EndedWithoutForm,
            // Completed there means it holds a credit from here that this bureau does not:
            // nothing to act on; the deadline decides (and a late form is still credited once).
            Stage::Applied
            | Stage::Accepted
            | Stage::InTransit
            | Stage::Credited
            | Stage::Completed
            | Stage::PayoutPending
            | Stage::Aborting
            | Stage::NeedsOperator
            | Stage::Querying
            | Stage::AwaitingConnection
            | Stage::UnderReview
            | Stage::AwaitingFunds => Self::Open,
        }
    }
}

/// Opens a transfer applied for at the transfer-in bureau (the usual path).
pub fn apply_here() -> Transition<InState, InAction> {
    Transition::to(InState::Applied, vec![InAction::SendTransferOutRequest])
}

/// Opens a transfer that the transfer-out bureau initiated: its form is the first message.
pub fn form_first(check: FormCheck) -> Transition<InState, InAction> {
    form_arrived(check)
}

/// Opens a transfer whose first message is an abort (the transfer-out bureau gave up before its
/// form arrived): remembered as `Aborted`, so that a late form is never credited.
pub fn abort_first() -> Transition<InState, InAction> {
    Transition::to(InState::Aborted, vec![])
}

/// Applies one event to a transfer at the transfer-in bureau.
pub fn apply(
    state: InState,
    event: InEvent,
) -> Result<Transition<InState, InAction>, IllegalEvent> {
    if state.is_terminal() {
        return Ok(Transition::stay(state));
    }
    let illegal = || IllegalEvent {
        state: state.name(),
        event: event.name(),
    };
    if matches!(state, InState::AwaitingFunds | InState::FundsHeld(_)) {
        return awaiting_funds(state, event).ok_or_else(illegal);
    }
    match (state, event) {
        (InState::Applied, InEvent::RequestAccepted) => {
            Ok(Transition::to(InState::Requested, vec![]))
        }
        (InState::Applied | InState::Querying, InEvent::RequestRefused(reason)) => {
            Ok(Transition::to(InState::Rejected(reason), vec![]))
        }
        (
            InState::Applied | InState::Requested | InState::Querying,
            InEvent::FormArrived(check),
        ) => Ok(form_arrived(check)),
        (InState::Applied | InState::Requested | InState::Querying, InEvent::AbortArrived) => {
            Ok(Transition::to(InState::Aborted, vec![]))
        }
        (InState::Credited, InEvent::SettlementConfirmed | InEvent::DeadlinePassed) => {
            Ok(Transition::to(InState::Completed, vec![]))
        }
        (InState::Applied | InState::Requested, InEvent::FormOverdue) => Ok(Transition::to(
            InState::Querying,
            vec![InAction::QueryTransferOut],
        )),
        (InState::Querying, InEvent::TransferOutAnswered(view)) => Ok(answered(state, view)),
        (InState::Applied | InState::Requested | InState::Querying, InEvent::DeadlinePassed) => {
            Ok(ended(RefusalReason::DeadlineExpired))
        }
        // Late or repeated news that changes nothing: an acceptance overtaken by its form, a
        // second delivery of a form already credited, an abort after the credit (its answer
        // says "credited"), a timer or an answer that is no longer news.
        (InState::Requested | InState::Querying, InEvent::RequestAccepted)
        | (
            InState::Credited,
            InEvent::RequestAccepted
            | InEvent::FormArrived(_)
            | InEvent::AbortArrived
            | InEvent::FormOverdue
            | InEvent::TransferOutAnswered(_),
        )
        | (InState::Querying, InEvent::FormOverdue)
        | (InState::Applied | InState::Requested, InEvent::TransferOutAnswered(_)) => {
            Ok(Transition::stay(state))
        }
        _ => Err(illegal()),
    }
}

/// The transfer-out bureau's answer to a query: end the transfer when it says no form will
/// come, keep waiting otherwise.
fn answered(state: InState, view: TransferOutView) -> Transition<InState, InAction> {
    match view {
        TransferOutView::Unknown => ended(RefusalReason::NotKnownAtTransferOut),
        TransferOutView::Refused(reason) => ended(reason),
        TransferOutView::EndedWithoutForm => {
            Transition::to(InState::Aborted, vec![InAction::WithdrawRequest])
        }
        TransferOutView::Open => Transition::stay(state),
    }
}

/// Ends a transfer before any credit; a request still queued goes with it.
fn ended(reason: RefusalReason) -> Transition<InState, InAction> {
    Transition::to(InState::Rejected(reason), vec![InAction::WithdrawRequest])
}

/// An event while the years are credited and the balance waits for its remittance; `None` when
/// the event is out of place.
fn awaiting_funds(state: InState, event: InEvent) -> Option<Transition<InState, InAction>> {
    match (state, event) {
        // A matching remittance while wrong money is held: credit it and return the held.
        (InState::FundsHeld(problem), InEvent::RemittanceArrived(RemittanceCheck::Matches))
            if problem.holds_money() =>
        {
            Some(Transition::to(
                InState::Completed,
                vec![InAction::CreditBalance, InAction::ReturnHeld],
            ))
        }
        (_, InEvent::RemittanceArrived(check)) => Some(remittance_arrived(check)),
        (InState::FundsHeld(problem), InEvent::HeldReturned) if problem.holds_money() => Some(
            Transition::to(InState::AwaitingFunds, vec![InAction::ReturnHeld]),
        ),
        (InState::AwaitingFunds, InEvent::RemittanceOverdue) => Some(Transition::to(
            InState::FundsHeld(FundsProblem::Overdue),
            vec![],
        )),
        // The years are credited: news about the form or the request changes nothing, and the
        // whole-process deadline leaves the balance to the remittance deadline.
        (
            _,
            InEvent::RequestAccepted
            | InEvent::FormArrived(_)
            | InEvent::AbortArrived
            | InEvent::FormOverdue
            | InEvent::TransferOutAnswered(_)
            | InEvent::DeadlinePassed
            | InEvent::RemittanceOverdue,
        ) => Some(Transition::stay(state)),
        (_, InEvent::RequestRefused(_) | InEvent::SettlementConfirmed | InEvent::HeldReturned) => {
            None
        }
    }
}

/// A remittance checked against the form: credited when it matches, held when it does not.
fn remittance_arrived(check: RemittanceCheck) -> Transition<InState, InAction> {
    match check {
        RemittanceCheck::Matches => {
            Transition::to(InState::Completed, vec![InAction::CreditBalance])
        }
        RemittanceCheck::Short => Transition::to(
            InState::FundsHeld(FundsProblem::Short),
            vec![InAction::HoldRemittance],
        ),
        RemittanceCheck::Over => Transition::to(
            InState::FundsHeld(FundsProblem::Over),
            vec![InAction::HoldRemittance],
        ),
    }
}

fn form_arrived(check: FormCheck) -> Transition<InState, InAction> {
    match check {
        FormCheck::Accept => Transition::to(InState::Completed, vec![InAction::CreditForm]),
        FormCheck::AcceptYearsAwaitFunds => {
            Transition::to(InState::AwaitingFunds, vec![InAction::CreditYears])
        }
        FormCheck::Refuse(reason) => Transition::to(InState::Rejected(reason), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::TransferState;
    use proptest::prelude::*;

    fn any_reason() -> impl Strategy<Value = RefusalReason> {
        proptest::sample::select(RefusalReason::ALL.to_vec())
    }

    fn any_event() -> impl Strategy<Value = InEvent> {
        prop_oneof![
            Just(InEvent::RequestAccepted),
            any_reason().prop_map(InEvent::RequestRefused),
            Just(InEvent::FormArrived(FormCheck::Accept)),
            any_reason().prop_map(|r| InEvent::FormArrived(FormCheck::Refuse(r))),
            Just(InEvent::SettlementConfirmed),
            Just(InEvent::AbortArrived),
            Just(InEvent::FormOverdue),
            Just(InEvent::DeadlinePassed),
            Just(InEvent::TransferOutAnswered(TransferOutView::Unknown)),
            Just(InEvent::TransferOutAnswered(TransferOutView::Open)),
            Just(InEvent::TransferOutAnswered(
                TransferOutView::EndedWithoutForm
            )),
            any_reason().prop_map(|r| InEvent::TransferOutAnswered(TransferOutView::Refused(r))),
            Just(InEvent::FormArrived(FormCheck::AcceptYearsAwaitFunds)),
            Just(InEvent::RemittanceArrived(RemittanceCheck::Matches)),
            Just(InEvent::RemittanceArrived(RemittanceCheck::Short)),
            Just(InEvent::RemittanceArrived(RemittanceCheck::Over)),
            Just(InEvent::RemittanceOverdue),
            Just(InEvent::HeldReturned),
        ]
    }

    fn any_opening() -> impl Strategy<Value = Transition<InState, InAction>> {
        prop_oneof![
            Just(apply_here()),
            // A transfer stored, credited, by an earlier version.
            Just(Transition {
                next: InState::Credited,
                actions: vec![InAction::CreditForm],
            }),
            Just(form_first(FormCheck::Accept)),
            Just(form_first(FormCheck::AcceptYearsAwaitFunds)),
            any_reason().prop_map(|r| form_first(FormCheck::Refuse(r))),
        ]
    }

    #[test]
    fn the_usual_path_credits_once_and_completes() {
        let opened = apply_here();
        assert_eq!(opened.actions, vec![InAction::SendTransferOutRequest]);
        let accepted = apply(opened.next, InEvent::RequestAccepted).expect("legal");
        let credited =
            apply(accepted.next, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        assert_eq!(credited.actions, vec![InAction::CreditForm]);
        assert_eq!(credited.next, InState::Completed, "the credit completes");
        let again = apply(credited.next, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        assert!(
            again.actions.is_empty(),
            "a second delivery must not credit twice"
        );
        let confirmed = apply(credited.next, InEvent::SettlementConfirmed).expect("legal");
        assert_eq!(confirmed.next, InState::Completed);
    }

    #[test]
    fn a_transfer_stored_waiting_for_settlement_completes_on_confirmation() {
        let done = apply(InState::Credited, InEvent::SettlementConfirmed).expect("legal");
        assert_eq!(done.next, InState::Completed);
        assert!(done.actions.is_empty());
        let again =
            apply(InState::Credited, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        assert!(again.actions.is_empty(), "never credited twice");
    }

    #[test]
    fn a_form_may_overtake_the_acceptance() {
        let credited =
            apply(InState::Applied, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        let late = apply(credited.next, InEvent::RequestAccepted).expect("legal");
        assert_eq!(late.next, InState::Completed);
        assert!(late.actions.is_empty());
    }

    #[test]
    fn an_aborted_transfer_never_credits_a_late_form() {
        let aborted = apply(InState::Requested, InEvent::AbortArrived).expect("legal");
        assert_eq!(aborted.next, InState::Aborted);
        assert!(!aborted.next.has_credited());
        let late = apply(aborted.next, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        assert_eq!(late.next, InState::Aborted);
        assert!(late.actions.is_empty());
    }

    #[test]
    fn an_abort_after_the_credit_answers_credited() {
        for credited in [InState::Completed, InState::Credited] {
            let after = apply(credited, InEvent::AbortArrived).expect("legal");
            assert_eq!(after.next, credited);
            assert!(after.next.has_credited());
        }
    }

    #[test]
    fn a_refusal_after_acceptance_is_an_error_not_a_panic() {
        let error = apply(
            InState::Requested,
            InEvent::RequestRefused(RefusalReason::Arrears),
        )
        .expect_err("illegal");
        assert_eq!(error.state, "REQUESTED");
    }

    proptest! {
        #[test]
        fn terminal_states_absorb_every_event(opening in any_opening(), events in prop::collection::vec(any_event(), 0..12)) {
            let mut state = opening.next;
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
        fn a_form_is_credited_at_most_once_and_never_after_an_abort(opening in any_opening(), events in prop::collection::vec(any_event(), 0..12)) {
            let years = |actions: &[InAction]| actions.iter().filter(|a| matches!(a, InAction::CreditForm | InAction::CreditYears)).count();
            let balance = |actions: &[InAction]| actions.iter().filter(|a| matches!(a, InAction::CreditForm | InAction::CreditBalance)).count();
            let mut credits = years(&opening.actions);
            let mut balances = balance(&opening.actions);
            let mut state = opening.next;
            let mut ended = false;
            for event in events {
                if let Ok(transition) = apply(state, event) {
                    let credited_now = years(&transition.actions) + balance(&transition.actions);
                    prop_assert!(!(ended && credited_now > 0), "credited after it ended: {state:?}");
                    credits += years(&transition.actions);
                    balances += balance(&transition.actions);
                    state = transition.next;
                    ended |= matches!(state, InState::Aborted | InState::Rejected(_));
                }
            }
            prop_assert!(credits <= 1);
            prop_assert!(balances <= 1);
            prop_assert_eq!(credits == 1, state.has_credited());
            prop_assert_eq!(balances == 1, state.has_credited_balance());
        }
    }

    proptest! {
        #[test]
        fn held_money_is_returned_exactly_once_and_no_transfer_ends_holding_any(opening in any_opening(), events in prop::collection::vec(any_event(), 0..16)) {
            let mut state = opening.next;
            let mut held = false;
            for event in events {
                if let Ok(transition) = apply(state, event) {
                    for action in &transition.actions {
                        match action {
                            InAction::HoldRemittance => held = true,
                            InAction::ReturnHeld => {
                                prop_assert!(held, "returned money that was not held: {state:?} {event:?}");
                                held = false;
                            }
                            _ => {}
                        }
                    }
                    state = transition.next;
                    prop_assert_eq!(held, matches!(state, InState::FundsHeld(p) if p.holds_money()), "{:?}", state);
                    prop_assert!(!(state.is_terminal() && held), "ended holding money: {state:?}");
                }
            }
        }
    }

    #[test]
    fn an_operator_returns_held_money_whole_and_the_transfer_waits_for_a_new_remittance() {
        for problem in [FundsProblem::Short, FundsProblem::Over] {
            let returned =
                apply(InState::FundsHeld(problem), InEvent::HeldReturned).expect("legal");
            assert_eq!(returned.next, InState::AwaitingFunds);
            assert_eq!(returned.actions, vec![InAction::ReturnHeld]);
            let error = apply(returned.next, InEvent::HeldReturned).expect_err("nothing held now");
            assert_eq!(error.state, "AWAITING_FUNDS");
            let done = apply(
                returned.next,
                InEvent::RemittanceArrived(RemittanceCheck::Matches),
            )
            .expect("legal");
            assert_eq!(done.next, InState::Completed);
            assert_eq!(done.actions, vec![InAction::CreditBalance]);
        }
        let error = apply(
            InState::FundsHeld(FundsProblem::Overdue),
            InEvent::HeldReturned,
        )
        .expect_err("an overdue remittance holds nothing to return");
        assert_eq!(error.event, "HELD_RETURNED");
        let done = apply(InState::Completed, InEvent::HeldReturned).expect("absorbed");
        assert!(done.actions.is_empty());
    }

    #[test]
    fn a_matching_remittance_while_money_is_held_credits_it_and_returns_the_held() {
        let done = apply(
            InState::FundsHeld(FundsProblem::Short),
            InEvent::RemittanceArrived(RemittanceCheck::Matches),
        )
        .expect("legal");
        assert_eq!(done.next, InState::Completed);
        assert_eq!(
            done.actions,
            vec![InAction::CreditBalance, InAction::ReturnHeld]
        );
    }

    #[test]
    fn an_overdue_form_asks_the_transfer_out_bureau_once() {
        for waiting in [InState::Applied, InState::Requested] {
            let querying = apply(waiting, InEvent::FormOverdue).expect("legal");
            assert_eq!(querying.next, InState::Querying);
            assert_eq!(querying.actions, vec![InAction::QueryTransferOut]);
            let again = apply(querying.next, InEvent::FormOverdue).expect("legal");
            assert!(again.actions.is_empty(), "asked once");
        }
    }

    #[test]
    fn an_answer_that_no_form_will_come_ends_the_transfer() {
        let cases = [
            (
                TransferOutView::Unknown,
                InState::Rejected(RefusalReason::NotKnownAtTransferOut),
            ),
            (
                TransferOutView::Refused(RefusalReason::RegionNotHosted),
                InState::Rejected(RefusalReason::RegionNotHosted),
            ),
            (TransferOutView::EndedWithoutForm, InState::Aborted),
        ];
        for (view, expected) in cases {
            let done = apply(InState::Querying, InEvent::TransferOutAnswered(view)).expect("legal");
            assert_eq!(done.next, expected, "{view:?}");
            assert_eq!(done.actions, vec![InAction::WithdrawRequest]);
        }
        let open = apply(
            InState::Querying,
            InEvent::TransferOutAnswered(TransferOutView::Open),
        )
        .expect("legal");
        assert_eq!(open.next, InState::Querying, "still on its way: wait");
        let form = apply(open.next, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
        assert_eq!(
            form.actions,
            vec![InAction::CreditForm],
            "the form is still welcome"
        );
    }

    #[test]
    fn the_deadline_ends_an_open_transfer_and_a_later_form_is_refused() {
        for open in [InState::Applied, InState::Requested, InState::Querying] {
            let ended = apply(open, InEvent::DeadlinePassed).expect("legal");
            assert_eq!(
                ended.next,
                InState::Rejected(RefusalReason::DeadlineExpired)
            );
            assert!(ended.next.is_terminal());
            let late = apply(ended.next, InEvent::FormArrived(FormCheck::Accept)).expect("legal");
            assert!(late.actions.is_empty(), "never credited after it ended");
            assert!(
                !late.next.has_credited(),
                "so an abort is answered not credited"
            );
        }
        let legacy = apply(InState::Credited, InEvent::DeadlinePassed).expect("legal");
        assert_eq!(legacy.next, InState::Completed);
        assert!(legacy.actions.is_empty(), "credited once, before");
    }

    #[test]
    fn the_transfer_out_answer_is_read_from_its_stage() {
        assert_eq!(TransferOutView::of(None), TransferOutView::Unknown);
        let refused = Some((Stage::Rejected, Some(RefusalReason::Arrears)));
        assert_eq!(
            TransferOutView::of(refused),
            TransferOutView::Refused(RefusalReason::Arrears)
        );
        assert_eq!(
            TransferOutView::of(Some((Stage::PaidToBank, None))),
            TransferOutView::EndedWithoutForm
        );
        for open in [
            Stage::InTransit,
            Stage::Aborting,
            Stage::NeedsOperator,
            Stage::Completed,
        ] {
            assert_eq!(
                TransferOutView::of(Some((open, None))),
                TransferOutView::Open
            );
        }
    }

    #[test]
    fn an_abort_before_any_form_leaves_the_transfer_aborted_for_good() {
        let opened = abort_first();
        assert_eq!(opened.next, InState::Aborted);
        assert!(opened.actions.is_empty());
        let late = apply(opened.next, InEvent::FormArrived(FormCheck::Accept)).expect("absorbed");
        assert_eq!(late.next, InState::Aborted);
        assert!(late.actions.is_empty(), "a late form is never credited");
    }

    #[test]
    fn a_form_whose_balance_is_remitted_apart_credits_the_years_at_once() {
        let accepted = apply(
            InState::Requested,
            InEvent::FormArrived(FormCheck::AcceptYearsAwaitFunds),
        )
        .expect("legal");
        assert_eq!(accepted.next, InState::AwaitingFunds);
        assert_eq!(accepted.actions, vec![InAction::CreditYears]);
        assert!(
            accepted.next.has_credited(),
            "an abort now answers credited"
        );
        assert!(!accepted.next.has_credited_balance());
        assert!(!accepted.next.is_terminal(), "the remittance deadline runs");
        let first = form_first(FormCheck::AcceptYearsAwaitFunds);
        assert_eq!(first.next, InState::AwaitingFunds);
    }

    #[test]
    fn the_balance_is_credited_only_when_the_remittance_matches() {
        let done = apply(
            InState::AwaitingFunds,
            InEvent::RemittanceArrived(RemittanceCheck::Matches),
        )
        .expect("legal");
        assert_eq!(done.next, InState::Completed);
        assert_eq!(done.actions, vec![InAction::CreditBalance]);
        let again = apply(
            done.next,
            InEvent::RemittanceArrived(RemittanceCheck::Matches),
        )
        .expect("absorbed");
        assert!(again.actions.is_empty(), "never credited twice");
    }

    #[test]
    fn a_short_or_over_remittance_is_refused_and_held_for_an_operator() {
        for (check, problem) in [
            (RemittanceCheck::Short, FundsProblem::Short),
            (RemittanceCheck::Over, FundsProblem::Over),
        ] {
            let held =
                apply(InState::AwaitingFunds, InEvent::RemittanceArrived(check)).expect("legal");
            assert_eq!(held.next, InState::FundsHeld(problem));
            assert_eq!(held.actions, vec![InAction::HoldRemittance]);
            assert_eq!(TransferState::In(held.next).stage(), Stage::NeedsOperator);
            let corrected = apply(
                held.next,
                InEvent::RemittanceArrived(RemittanceCheck::Matches),
            )
            .expect("legal");
            assert_eq!(corrected.next, InState::Completed, "a corrected remittance");
            assert_eq!(
                corrected.actions,
                vec![InAction::CreditBalance, InAction::ReturnHeld],
                "the wrong one goes back"
            );
        }
    }

    #[test]
    fn a_missing_remittance_is_flagged_overdue_and_a_late_one_still_completes() {
        let overdue = apply(InState::AwaitingFunds, InEvent::RemittanceOverdue).expect("legal");
        assert_eq!(overdue.next, InState::FundsHeld(FundsProblem::Overdue));
        assert!(overdue.actions.is_empty(), "nothing moves");
        let again = apply(overdue.next, InEvent::RemittanceOverdue).expect("legal");
        assert_eq!(again.next, overdue.next, "flagged once");
        let late = apply(
            overdue.next,
            InEvent::RemittanceArrived(RemittanceCheck::Matches),
        )
        .expect("legal");
        assert_eq!(late.next, InState::Completed);
        assert_eq!(late.actions, vec![InAction::CreditBalance]);
        let deadline = apply(InState::AwaitingFunds, InEvent::DeadlinePassed).expect("legal");
        assert_eq!(
            deadline.next,
            InState::AwaitingFunds,
            "the years are credited: the remittance deadline decides"
        );
    }

    #[test]
    fn a_remittance_before_the_form_or_for_a_credited_form_is_illegal() {
        for state in [
            InState::Applied,
            InState::Requested,
            InState::Querying,
            InState::Credited,
        ] {
            let error = apply(state, InEvent::RemittanceArrived(RemittanceCheck::Matches))
                .expect_err("no form awaits funds");
            assert_eq!(error.event, "REMITTANCE_ARRIVED");
        }
        let error = apply(InState::AwaitingFunds, InEvent::SettlementConfirmed)
            .expect_err("no settlement confirmation awaits funds");
        assert_eq!(error.state, "AWAITING_FUNDS");
    }
}
