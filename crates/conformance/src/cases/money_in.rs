//! The money leg against a transfer-in bureau (`--remittance`): the suite plays a transfer-out
//! bureau whose region remits balances apart. Its forms say remittance_follows; it remits the
//! balance (RemitBalance, 9106) matching, repeated, short, and again after the target returned
//! a short one (ReturnRemittance, 9107).

use rust_decimal::Decimal;
use yibao_domain::money::Money;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::admin::v1 as admin;
use yibao_proto::common::v1::TransferState;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::RemittanceCheck as Check;
use yibao_proto::platform::v1::credit_acknowledgement::Outcome;

use super::{Case, money, unanswered};
use crate::Role;
use crate::context::{Checked, Ctx, Verdict, expect, form_answer_text, remit_answer_text};
use crate::counterpart::{Received, Remitted, check_name};

/// The role these cases test (the `case!` macro of `cases.rs` reads it).
const ROLE: Role = Role::TransferIn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "remittance-credits-the-balance-once",
            remittance_credits_the_balance_once,
            "A form saying remittance_follows credits the years and 0.00 and waits AWAITING_FUNDS; a RemitBalance (9106) of the form's balance to the cent is answered MATCHED, credits the balance once and completes the transfer (platform.proto, the fund leg). Skipped without --remittance."
        ),
        case!(
            "remittance-repeated-msgid-same-answer",
            remittance_repeated_msgid_same_answer,
            "A RemitBalance sent again with the same msgid gets its first answer, unchanged; one under a new msgid after the match is MATCHED again; the balance is credited once (platform.proto, Idempotency; RemitBalance). Skipped without --remittance."
        ),
        case!(
            "short-remittance-refused-and-held",
            short_remittance_refused_and_held,
            "A remittance a cent short is answered SHORT, credits nothing and is held (NEEDS_OPERATOR); a matching one then completes the transfer, and the short one comes back whole by ReturnRemittance (9107) naming its msgid (platform.proto, the fund leg). Skipped without --remittance."
        ),
        case!(
            "short-remittance-returned-by-operator",
            short_remittance_returned_by_operator,
            "After a short remittance, the target's operator returns it (AdminService.ResolveTransfer RETURN_REMITTANCE): a ReturnRemittance (9107) names its msgid, amount and SHORT; the balance remitted again under a new msgid matches and completes the transfer, suspense back where it was (platform.proto, the fund leg). Skipped without --remittance or --target-admin."
        ),
    ]
}

/// The target's credited and held-in-suspense totals, when it has the admin API.
#[derive(Clone, Copy, Debug)]
struct Ledger {
    credited: Decimal,
    held: Decimal,
}

async fn ledger(ctx: &Ctx) -> Result<Option<Ledger>, Verdict> {
    let Some(totals) = ctx.target_totals().await else {
        return Ok(None);
    };
    Ok(Some(Ledger {
        credited: money("credited_total", &totals.credited_total)?.to_decimal(),
        held: money("held_in_suspense_total", &totals.held_in_suspense_total)?.to_decimal(),
    }))
}

/// Checks the target's ledger moved by `credited` and `held` since `before` (with its admin API).
async fn ledger_moved(
    ctx: &Ctx,
    before: Option<Ledger>,
    credited: Decimal,
    held: Decimal,
    when: &str,
) -> Checked {
    let (Some(before), Some(after)) = (before, ledger(ctx).await?) else {
        return Ok(());
    };
    let (grew, held_grew) = (after.credited - before.credited, after.held - before.held);
    expect(
        grew == credited && held_grew == held,
        format!(
            "{when}: the target's credited_total grew by {credited} and held_in_suspense_total by {held}"
        ),
        || format!("they grew by {grew} and {held_grew} (was the target otherwise idle?)"),
    )
}

/// A transfer opened by a form saying remittance_follows, its years credited and its balance
/// awaited: the id, the person and the ledger before the form.
async fn open(ctx: &Ctx) -> Result<(String, SyntheticPerson, Option<Ledger>), Verdict> {
    ctx.remittance_days()?;
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let id = ctx.new_transfer_id().await;
    let mut form = ctx.form(&person, &id).await;
    form.remittance_follows = true;
    let months = form.contribution_months;
    ctx.counterpart.hold(&id, person.certno.expose_unmasked());
    if let Ok(mut tally) = ctx.tally.lock() {
        tally.sent.push((id.clone(), person.balance));
    }
    let before = ledger(ctx).await?;
    let answer = ctx
        .deliver(platform::DeliverInsuranceRecordRequest {
            envelope: Some(ctx.envelope("9102", &id)),
            form: Some(form),
        })
        .await
        .map_err(|status| unanswered("DeliverInsuranceRecord", &status))?;
    let credit = match answer
        .acknowledgement
        .as_ref()
        .and_then(|a| a.outcome.as_ref())
    {
        Some(Outcome::Credited(credit))
            if answer.reply.as_ref().is_some_and(|r| r.infcode == 0) =>
        {
            credit.clone()
        }
        _ => {
            return Err(Verdict::Fail {
                expected: "infcode 0 and the form credited (its years)".into(),
                observed: form_answer_text(&answer),
            });
        }
    };
    let amount = money("credited.credited_amount", &credit.credited_amount)?;
    expect(
        amount.is_zero() && (months == 0 || credit.credited_months > 0),
        "the years credited and credited_amount 0.00: the balance waits for its remittance",
        || form_answer_text(&answer),
    )?;
    ctx.until_target_state(&id, "the transfer is AWAITING_FUNDS", |s| {
        s.is(TransferState::AwaitingFunds)
    })
    .await?;
    ledger_moved(ctx, before, Decimal::ZERO, Decimal::ZERO, "after the form").await?;
    Ok((id, person, before))
}

/// A remittance of `amount` for `id` under a fresh msgid.
fn remittance(ctx: &Ctx, id: &str, amount: Money) -> platform::RemitBalanceRequest {
    platform::RemitBalanceRequest {
        envelope: Some(ctx.envelope("9106", id)),
        transfer_id: id.to_owned(),
        amount: amount.to_string(),
        remitted_at: Some(crate::identity::timestamp(chrono::Utc::now())),
    }
}

/// Sends a remittance and checks it is answered infcode 0 with `expected`; notes it at the
/// counterpart, so that a return of it is answered.
async fn remit(
    ctx: &Ctx,
    request: platform::RemitBalanceRequest,
    expected: Check,
) -> Result<platform::RemitBalanceResponse, Verdict> {
    let msgid = request
        .envelope
        .as_ref()
        .map(|e| e.msgid.clone())
        .unwrap_or_default();
    let (id, amount) = (request.transfer_id.clone(), request.amount.clone());
    let answer = ctx
        .remit(request)
        .await
        .map_err(|status| unanswered("RemitBalance", &status))?;
    let check = Check::try_from(answer.check).unwrap_or(Check::Unspecified);
    ctx.counterpart.remitted(
        &id,
        Remitted {
            msgid,
            amount: amount.clone(),
            check,
        },
    );
    expect(
        answer.reply.as_ref().is_some_and(|r| r.infcode == 0) && check == expected,
        format!(
            "infcode 0 and check {} for a remittance of {amount}",
            check_name(expected as i32)
        ),
        || remit_answer_text(&answer),
    )?;
    Ok(answer)
}

async fn completes(ctx: &Ctx, id: &str) -> Checked {
    ctx.until_target_state(id, "the transfer is COMPLETED", |s| {
        s.is(TransferState::Completed)
    })
    .await
    .map(|_| ())
}

async fn remittance_credits_the_balance_once(ctx: Ctx) -> Checked {
    let (id, person, before) = open(&ctx).await?;
    remit(&ctx, remittance(&ctx, &id, person.balance), Check::Matched).await?;
    completes(&ctx, &id).await?;
    let balance = person.balance.to_decimal();
    ledger_moved(&ctx, before, balance, Decimal::ZERO, "after the remittance").await
}

async fn remittance_repeated_msgid_same_answer(ctx: Ctx) -> Checked {
    let (id, person, before) = open(&ctx).await?;
    let request = remittance(&ctx, &id, person.balance);
    let first = remit(&ctx, request.clone(), Check::Matched).await?;
    let second = remit(&ctx, request, Check::Matched).await?;
    crate::context::same_answer(&first, &second, remit_answer_text)?;
    remit(&ctx, remittance(&ctx, &id, person.balance), Check::Matched).await?;
    completes(&ctx, &id).await?;
    let balance = person.balance.to_decimal();
    ledger_moved(
        &ctx,
        before,
        balance,
        Decimal::ZERO,
        "after three remittances",
    )
    .await
}

/// An amount that does not match `balance`: a cent short (a cent over for a zero balance).
fn wrong_amount(balance: Money) -> (Money, Check) {
    let cent = Money::from_cents(1).unwrap_or_default();
    match balance.checked_sub(cent) {
        Some(short) => (short, Check::Short),
        None => (balance.checked_add(cent).unwrap_or(balance), Check::Over),
    }
}

/// Sends a wrong remittance for `id` and checks it is refused and held: its msgid and amount.
async fn refused_and_held(
    ctx: &Ctx,
    id: &str,
    person: &SyntheticPerson,
    before: Option<Ledger>,
) -> Result<(String, Money, Check), Verdict> {
    let (wrong, check) = wrong_amount(person.balance);
    let request = remittance(ctx, id, wrong);
    let msgid = request
        .envelope
        .as_ref()
        .map(|e| e.msgid.clone())
        .unwrap_or_default();
    remit(ctx, request, check).await?;
    ctx.until_target_state(
        id,
        "the transfer waits for an operator (NEEDS_OPERATOR) with the remittance held",
        |s| s.is(TransferState::NeedsOperator),
    )
    .await?;
    let held = wrong.to_decimal();
    ledger_moved(
        ctx,
        before,
        Decimal::ZERO,
        held,
        "after the refused remittance",
    )
    .await?;
    Ok((msgid, wrong, check))
}

/// Waits for the target's ReturnRemittance of `msgid` and checks it returns it whole.
async fn returned(ctx: &Ctx, id: &str, msgid: &str, amount: Money, check: Check) -> Checked {
    let back = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| {
            c.arrivals(id).into_iter().find_map(|a| match a.message {
                Received::Return(r) if r.remittance_msgid == msgid => Some(r),
                _ => None,
            })
        })
        .await;
    let Some(back) = back else {
        return Err(Verdict::Fail {
            expected: format!(
                "within {:?}: a ReturnRemittance (9107) naming the refused remittance {msgid}",
                ctx.settings.wait
            ),
            observed: "none came".into(),
        });
    };
    let carried = money("amount", &back.amount)?;
    expect(
        carried == amount && back.check == check as i32,
        format!(
            "the return carries the refused remittance whole: {amount}, {}",
            check_name(check as i32)
        ),
        || format!("{}, {}", back.amount, check_name(back.check)),
    )?;
    ctx.no_violations(id)
}

async fn short_remittance_refused_and_held(ctx: Ctx) -> Checked {
    let (id, person, before) = open(&ctx).await?;
    let (msgid, wrong, check) = refused_and_held(&ctx, &id, &person, before).await?;
    remit(&ctx, remittance(&ctx, &id, person.balance), Check::Matched).await?;
    completes(&ctx, &id).await?;
    returned(&ctx, &id, &msgid, wrong, check).await?;
    let balance = person.balance.to_decimal();
    ledger_moved(
        &ctx,
        before,
        balance,
        Decimal::ZERO,
        "after the matching remittance",
    )
    .await
}

async fn short_remittance_returned_by_operator(ctx: Ctx) -> Checked {
    ctx.remittance_days()?;
    let Some(mut operator) = ctx.target.admin.clone() else {
        return Err(Verdict::Skip(
            "the target's operator path is out of reach: give --target-admin (AdminService.ResolveTransfer)".into(),
        ));
    };
    let (id, person, before) = open(&ctx).await?;
    let (msgid, wrong, check) = refused_and_held(&ctx, &id, &person, before).await?;
    let resolved = operator
        .resolve_transfer(admin::ResolveTransferRequest {
            transfer_id: id.clone(),
            operator: "conformance suite".to_owned(),
            reason: "the suite's fund office asked for the wrong remittance back".to_owned(),
            outcome: admin::ResolveOutcome::ReturnRemittance as i32,
        })
        .await
        .map_err(|status| Verdict::Fail {
            expected: "AdminService.ResolveTransfer RETURN_REMITTANCE returns the held money"
                .into(),
            observed: crate::context::status_text(&status),
        })?;
    expect(
        resolved.get_ref().state == TransferState::AwaitingFunds as i32,
        "after the return the transfer waits for the balance again (AWAITING_FUNDS)",
        || crate::counterpart::state_name(resolved.get_ref().state).to_owned(),
    )?;
    returned(&ctx, &id, &msgid, wrong, check).await?;
    ledger_moved(
        &ctx,
        before,
        Decimal::ZERO,
        Decimal::ZERO,
        "after the return",
    )
    .await?;
    remit(&ctx, remittance(&ctx, &id, person.balance), Check::Matched).await?;
    completes(&ctx, &id).await?;
    let balance = person.balance.to_decimal();
    ledger_moved(
        &ctx,
        before,
        balance,
        Decimal::ZERO,
        "after the new remittance",
    )
    .await
}
