//! The money leg against a transfer-out bureau (`--remittance`): the suite plays transfer-in,
//! credits the years of a form that says remittance_follows, moves the target's test clock to
//! the remittance day, checks the RemitBalance (9106) that comes and answers it MATCHED, or
//! SHORT and then returns it (ReturnRemittance, 9107) and checks the balance is remitted again.

use std::time::Duration;

use yibao_domain::money::Money;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::common::v1::TransferState;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::RemittanceCheck as Check;

use super::transfer_out::{accepted, form_arrives, id_of, request, send};
use super::{Case, money, unanswered};
use crate::Role;
use crate::context::{Checked, Ctx, Verdict, expect, reply_text};
use crate::counterpart::{Received, RemitPlan};
use crate::identity::china_date;

/// The role these cases test (the `case!` macro of `cases.rs` reads it).
const ROLE: Role = Role::TransferOut;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "remits-after-its-form",
            remits_after_its_form,
            "The form says remittance_follows; once the target's test clock reaches the remittance day, a RemitBalance (9106) comes with a conforming envelope and msgid and the form's balance to the cent; answered MATCHED, the transfer completes (platform.proto, the fund leg). Skipped without --remittance or --target-admin."
        ),
        case!(
            "refused-remittance-remitted-again",
            refused_remittance_remitted_again,
            "A remittance answered SHORT leaves the transfer waiting (NEEDS_OPERATOR); a ReturnRemittance (9107) naming its msgid is answered remitting_again, the same when sent again, and the balance comes again under a new msgid for the same amount, which completes the transfer (platform.proto, the fund leg). Skipped without --remittance or --target-admin."
        ),
    ]
}

/// The remittances the target sent for `id`, in order: (msgid, request), one per msgid.
fn remittances(ctx: &Ctx, id: &str) -> Vec<(String, platform::RemitBalanceRequest)> {
    let mut found: Vec<(String, platform::RemitBalanceRequest)> = Vec::new();
    for arrival in ctx.counterpart.arrivals(id) {
        if let Received::Remittance(r) = arrival.message
            && !found.iter().any(|(msgid, _)| *msgid == arrival.msgid)
        {
            found.push((arrival.msgid, r));
        }
    }
    found
}

/// Waits for the `n`th remittance (counting from 1) of `id`.
async fn nth_remittance(
    ctx: &Ctx,
    id: &str,
    n: usize,
    within: Duration,
) -> Option<(String, platform::RemitBalanceRequest)> {
    ctx.counterpart
        .wait_for(within, |_| remittances(ctx, id).into_iter().nth(n - 1))
        .await
}

/// Checks a remittance carries the form's balance to the cent.
fn carries_the_balance(request: &platform::RemitBalanceRequest, balance: Money) -> Checked {
    let amount = money("RemitBalance.amount", &request.amount)?;
    expect(
        amount == balance,
        format!("the remittance carries the form's balance, {balance}"),
        || format!("amount {amount}"),
    )
}

/// Requests a transfer whose remittances the suite answers by `plan`, credits its form's years,
/// and moves the target's clock a day at a time until the first remittance comes: the id, the
/// person and that remittance.
async fn first_remittance(
    ctx: &Ctx,
    plan: RemitPlan,
) -> Result<(String, SyntheticPerson, platform::RemitBalanceRequest), Verdict> {
    let days = ctx.remittance_days()?;
    if ctx.target.admin.is_none() {
        return Err(Verdict::Skip(
            "the remittance day is on the target's clock: give --target-admin (AdminService.AdvanceClock) of a target on a test clock".into(),
        ));
    }
    let person = ctx.person(Flow::CrossProvince).await?;
    ctx.counterpart
        .plan_remittances(person.certno.expose_unmasked(), plan);
    let request = request(ctx, &person).await;
    let id = id_of(&request);
    let answer = send(ctx, request.clone()).await?;
    accepted(ctx, &request, &answer)?;
    let form = form_arrives(ctx, &id, &person).await?;
    expect(
        form.remittance_follows,
        "the form says remittance_follows: the target's region remits balances apart (--remittance)",
        || "remittance_follows = false".into(),
    )?;
    expect(
        remittances(ctx, &id).is_empty() || days == 0,
        format!("no remittance before the remittance day ({days} working days after the form)"),
        || "a remittance came with the form".into(),
    )?;
    // A day at a time, so that the remittance day comes however long the target took to read
    // the form's answer; working days are at most a week apart on the shipped calendar.
    let step = Duration::from_secs(3).min(ctx.settings.wait);
    let today = china_date(ctx.now().await);
    let most = ctx
        .calendar
        .add_working_days(today, days)
        .map_or(30, |d| (d.due_on - today).num_days() + 10);
    for _ in 0..most {
        ctx.advance_target_clock(Duration::from_secs(86_400))
            .await?;
        if let Some((_, first)) = nth_remittance(ctx, &id, 1, step).await {
            return Ok((id, person, first));
        }
    }
    Err(Verdict::Fail {
        expected: format!(
            "a RemitBalance (9106) for transfer {id} by {days} working days after the form, on the target's clock"
        ),
        observed: format!("none came after moving the clock {most} days"),
    })
}

async fn remits_after_its_form(ctx: Ctx) -> Checked {
    let (id, person, first) = first_remittance(&ctx, RemitPlan::Check).await?;
    carries_the_balance(&first, person.balance)?;
    ctx.until_target_state(&id, "the transfer is COMPLETED", |s| {
        s.is(TransferState::Completed)
    })
    .await?;
    let count = remittances(&ctx, &id).len();
    expect(count == 1, "one remittance, under one msgid", || {
        format!("{count} remittances")
    })?;
    ctx.no_violations(&id)
}

/// Returns the remittance `msgid` of `id` (ReturnRemittance, 9107, as SHORT) and checks the
/// target remits again, answering the same when the return comes twice.
async fn return_it(ctx: &Ctx, id: &str, msgid: &str, amount: &str) -> Checked {
    let back = platform::ReturnRemittanceRequest {
        envelope: Some(ctx.envelope("9107", id)),
        transfer_id: id.to_owned(),
        remittance_msgid: msgid.to_owned(),
        amount: amount.to_owned(),
        check: Check::Short as i32,
    };
    let answer = ctx
        .return_remittance(back.clone())
        .await
        .map_err(|status| unanswered("ReturnRemittance", &status))?;
    expect(
        answer.reply.as_ref().is_some_and(|r| r.infcode == 0) && answer.remitting_again,
        format!("infcode 0 and remitting_again: the return names the latest remittance {msgid}"),
        || {
            format!(
                "{}, remitting_again = {}",
                reply_text(answer.reply.as_ref()),
                answer.remitting_again
            )
        },
    )?;
    let again = ctx
        .return_remittance(back)
        .await
        .map_err(|status| unanswered("ReturnRemittance", &status))?;
    crate::context::same_answer(&answer, &again, |a| {
        format!(
            "{}, remitting_again = {}",
            reply_text(a.reply.as_ref()),
            a.remitting_again
        )
    })
}

async fn refused_remittance_remitted_again(ctx: Ctx) -> Checked {
    let (id, person, first) = first_remittance(&ctx, RemitPlan::RefuseFirst).await?;
    carries_the_balance(&first, person.balance)?;
    let msgid = first
        .envelope
        .as_ref()
        .map(|e| e.msgid.clone())
        .unwrap_or_default();
    ctx.until_target_state(
        &id,
        "the refused remittance leaves the transfer waiting for its return (NEEDS_OPERATOR)",
        |s| s.is(TransferState::NeedsOperator),
    )
    .await?;
    return_it(&ctx, &id, &msgid, &first.amount).await?;
    let second = nth_remittance(&ctx, &id, 2, ctx.settings.wait).await;
    let Some((second_msgid, second)) = second else {
        return Err(Verdict::Fail {
            expected: format!(
                "within {:?}: the balance remitted again (RemitBalance, 9106) under a new msgid",
                ctx.settings.wait
            ),
            observed: "no second remittance came".into(),
        });
    };
    expect(
        second_msgid != msgid,
        "the remittance sent again has a msgid of its own",
        || format!("it reused {msgid}"),
    )?;
    carries_the_balance(&second, person.balance)?;
    ctx.until_target_state(&id, "the transfer is COMPLETED", |s| {
        s.is(TransferState::Completed)
    })
    .await?;
    let count = remittances(&ctx, &id).len();
    expect(
        count == 2,
        "two remittances: the refused one and the one sent again",
        || format!("{count} remittances"),
    )?;
    ctx.no_violations(&id)
}
