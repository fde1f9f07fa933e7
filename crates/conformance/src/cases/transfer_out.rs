//! Cases against a transfer-out bureau: the suite plays transfer-in, requests transfers, receives
//! and answers the target's forms (credit, lose the answer, withhold it) and its aborts.

use std::time::Duration;

use yibao_domain::money::Money;
use yibao_domain::month::total_months;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::common::v1::{BalanceDisposition, RefusalReason, TransferState};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::request_transfer_out_response::Decision;

use super::{Case, money, unanswered};
use crate::Role;
use crate::context::{Checked, Ctx, TransferStateView, Verdict, expect, reply_text};
use crate::counterpart::{FormPlan, Received, reason_name};
use crate::identity::china_date;

/// The role these cases test (the `case!` macro of `cases.rs` reads it).
const ROLE: Role = Role::TransferOut;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "request-transfer-completes",
            request_transfer_completes,
            "A request for a person who stopped contributing and owes nothing is accepted, due 10 working days from the application; the form follows with the person's periods, months and balance to the cent; once credited the transfer completes (DOMAIN.md, the transfer, steps 2-5; deadlines)."
        ),
        case!(
            "out-initiated-transfer-completes",
            out_initiated_transfer_completes,
            "An application at the target becomes a form (9102) under a transfer id of the target's region, credited, then completed (DOMAIN.md, the transfer started at transfer-out)."
        ),
        case!(
            "repeated-msgid-same-answer",
            repeated_msgid_same_answer,
            "A request sent again with the same msgid and body gets the first answer again, unchanged, inf_refmsgid included, and only one form follows (platform.proto, Idempotency)."
        ),
        case!(
            "modified-body-1004",
            modified_body_1004,
            "A request sent again with the same msgid but another body is infcode 1004 and changes nothing (platform.proto, Idempotency)."
        ),
        case!(
            "wrong-infno-1003",
            wrong_infno_1003,
            "RequestTransferOut with infno 9102 is infcode 1003 and opens nothing (platform.proto, reply codes)."
        ),
        case!(
            "region-not-hosted-1002",
            region_not_hosted_1002,
            "A request addressed to a region the target does not host is infcode 1002 and opens nothing (platform.proto, Envelope.receiver_region_code)."
        ),
        case!(
            "refusal-is-an-answer",
            refusal_is_an_answer,
            "A request for a person who owes contributions is processed and refused REFUSAL_REASON_ARREARS with infcode 0, the same when asked again, and no form follows (DOMAIN.md, eligibility; platform.proto, refusals)."
        ),
        case!(
            "lost-answer-retried-once",
            lost_answer_retried_once,
            "When the suite credits a form but its answer is lost (UNAVAILABLE), the target resends the same msgid with the same bytes, reads the credit and completes, settling once (platform.proto, Idempotency and gRPC status codes)."
        ),
        case!(
            "batch-one-bad-message",
            batch_one_bad_message,
            "In a SubmitTransferOutRequests batch, one bad message gets its own refusal and the others are accepted as if sent alone (platform.proto, Batches). Skipped when the target serves no batch RPC (batches are optional)."
        ),
        case!(
            "abort-before-credit",
            abort_before_credit,
            "When the form is never acknowledged, the target aborts after the whole-process deadline on its test clock (AbortTransfer, 9104); answered credited = false, it ends the transfer without completing it and never sends the form again (DOMAIN.md, deadlines; platform.proto AbortTransfer)."
        ),
        case!(
            "abort-after-credit",
            abort_after_credit,
            "When the suite credited the form but every answer was lost, the target's abort is answered credited = true with the credit, and the target completes the transfer instead of returning the balance (platform.proto AbortTransfer: only credited = false lets the balance come back)."
        ),
        case!(
            "conservation-to-the-cent",
            conservation,
            "Every balance the suite credited was settled by the target, nothing stays in transit, and the target's ledger moved by exactly the amounts that left, were settled and came back (DOMAIN.md, conservation of money)."
        ),
    ]
}

pub(super) async fn request(
    ctx: &Ctx,
    person: &SyntheticPerson,
) -> platform::RequestTransferOutRequest {
    let id = ctx.new_transfer_id().await;
    platform::RequestTransferOutRequest {
        envelope: Some(ctx.envelope("9101", &id)),
        application: Some(ctx.application(person, &id).await),
    }
}

pub(super) fn id_of(request: &platform::RequestTransferOutRequest) -> String {
    request
        .application
        .as_ref()
        .map(|a| a.transfer_id.clone())
        .unwrap_or_default()
}

pub(super) async fn send(
    ctx: &Ctx,
    request: platform::RequestTransferOutRequest,
) -> Result<platform::RequestTransferOutResponse, Verdict> {
    ctx.request_out(request)
        .await
        .map_err(|status| unanswered("RequestTransferOut", &status))
}

fn infcode(reply: Option<&platform::Reply>) -> i32 {
    reply.map_or(-1, |r| r.infcode)
}

fn text(answer: &platform::RequestTransferOutResponse) -> String {
    let decision = match &answer.decision {
        Some(Decision::Accepted(a)) => format!(", accepted, due {}", a.transfer_out_due_on),
        Some(Decision::Rejected(r)) => format!(", rejected {}", reason_name(r.reason_code)),
        Some(Decision::UnderReview(u)) => format!(", under review until {}", u.decided_on),
        None => String::new(),
    };
    format!("{}{decision}", reply_text(answer.reply.as_ref()))
}

/// Checks an acceptance and its due date: 10 working days from the day of application.
pub(super) fn accepted(
    ctx: &Ctx,
    request: &platform::RequestTransferOutRequest,
    answer: &platform::RequestTransferOutResponse,
) -> Checked {
    let Some(Decision::Accepted(acceptance)) = answer
        .decision
        .as_ref()
        .filter(|_| infcode(answer.reply.as_ref()) == 0)
    else {
        return Err(Verdict::Fail {
            expected: "infcode 0 and the request accepted".into(),
            observed: text(answer),
        });
    };
    let applied = request
        .application
        .as_ref()
        .and_then(|a| a.applied_at.as_ref())
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(china_date);
    let due = applied
        .and_then(|day| ctx.calendar.add_working_days(day, 10).ok())
        .map(|d| d.due_on.to_string());
    expect(
        due.as_deref() == Some(acceptance.transfer_out_due_on.as_str()),
        format!("transfer_out_due_on 10 working days after the application ({applied:?}): {due:?}"),
        || acceptance.transfer_out_due_on.clone(),
    )
}

/// Waits for the target's first form for `id` and checks it against `person`.
pub(super) async fn form_arrives(
    ctx: &Ctx,
    id: &str,
    person: &SyntheticPerson,
) -> Result<platform::InsuranceInformationForm, Verdict> {
    let form = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| {
            c.arrivals(id).into_iter().find_map(|a| match a.message {
                Received::Form(r) => r.form,
                _ => None,
            })
        })
        .await;
    let Some(form) = form else {
        return Err(Verdict::Fail {
            expected: format!(
                "within {:?}: the information form (9102) for transfer {id}",
                ctx.settings.wait
            ),
            observed: "no form came".into(),
        });
    };
    let balance = money(
        "form.personal_account_balance",
        &form.personal_account_balance,
    )?;
    let months = total_months(&person.periods);
    expect(
        form.certno == person.certno.expose_unmasked()
            && form.trafout_admdvs == ctx.identity.target_region
            && form.trafin_admdvs == ctx.identity.own_region
            && balance == person.balance
            && form.contribution_months == months
            && form.periods.len() == person.periods.len()
            && form.balance_disposition == BalanceDisposition::MoveToAccount as i32,
        format!(
            "the form names the person, trafout {} and trafin {}, {} periods and {months} months, and moves the balance {} to the account",
            ctx.identity.target_region,
            ctx.identity.own_region,
            person.periods.len(),
            person.balance
        ),
        || {
            format!(
                "certno {}, trafout {}, trafin {}, {} periods, {} months, balance {}, disposition {}",
                if form.certno == person.certno.expose_unmasked() {
                    "matches"
                } else {
                    "differs"
                },
                form.trafout_admdvs,
                form.trafin_admdvs,
                form.periods.len(),
                form.contribution_months,
                form.personal_account_balance,
                BalanceDisposition::try_from(form.balance_disposition)
                    .map_or("UNKNOWN", |d| d.as_str_name())
            )
        },
    )?;
    Ok(form)
}

async fn completes(ctx: &Ctx, id: &str) -> Checked {
    ctx.until_target_state(id, "the transfer is COMPLETED", |s| {
        s.is(TransferState::Completed)
    })
    .await?;
    ctx.no_violations(id)
}

async fn request_transfer_completes(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let request = request(&ctx, &person).await;
    let id = id_of(&request);
    let answer = send(&ctx, request.clone()).await?;
    accepted(&ctx, &request, &answer)?;
    form_arrives(&ctx, &id, &person).await?;
    completes(&ctx, &id).await
}

async fn out_initiated_transfer_completes(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let certno = person.certno.expose_unmasked().to_owned();
    let id = ctx.apply_at_target(&person).await?;
    let delivered = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| c.form_transfer_of(&certno))
        .await;
    expect(
        delivered.as_deref() == Some(id.as_str()) && id.starts_with(&ctx.identity.target_region),
        format!(
            "a form (9102) under the application's transfer id {id}, minted by the target's region"
        ),
        || format!("{delivered:?}"),
    )?;
    form_arrives(&ctx, &id, &person).await?;
    completes(&ctx, &id).await
}

async fn repeated_msgid_same_answer(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let request = request(&ctx, &person).await;
    let id = id_of(&request);
    let first = send(&ctx, request.clone()).await?;
    accepted(&ctx, &request, &first)?;
    let second = send(&ctx, request).await?;
    crate::context::same_answer(&first, &second, text)?;
    form_arrives(&ctx, &id, &person).await?;
    completes(&ctx, &id).await?;
    one_form_msgid(&ctx, &id)
}

/// Every form the target sent for `id` carries one msgid (retries are resends, not new forms).
fn one_form_msgid(ctx: &Ctx, id: &str) -> Checked {
    let mut msgids: Vec<String> = ctx
        .counterpart
        .arrivals(id)
        .into_iter()
        .filter(|a| matches!(a.message, Received::Form(_)))
        .map(|a| a.msgid)
        .collect();
    msgids.dedup();
    expect(
        msgids.len() == 1,
        "one form for the transfer, under one msgid",
        || format!("forms under {} msgids: {}", msgids.len(), msgids.join(", ")),
    )
}

async fn modified_body_1004(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let request = request(&ctx, &person).await;
    let id = id_of(&request);
    let first = send(&ctx, request.clone()).await?;
    accepted(&ctx, &request, &first)?;
    let mut modified = request;
    if let Some(application) = modified.application.as_mut() {
        application.retiree_payout_requested = !application.retiree_payout_requested;
    }
    let answer = send(&ctx, modified).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1004 && answer.decision.is_none(),
        "infcode 1004 (modified request) and no decision",
        || text(&answer),
    )?;
    form_arrives(&ctx, &id, &person).await?;
    completes(&ctx, &id).await
}

async fn nothing_opened(ctx: &Ctx, id: &str) -> Checked {
    let state = ctx.target_state(id).await?;
    expect(
        state.is_none(),
        format!("nothing written: a query about {id} is answered 1005 (unknown)"),
        || format!("the target knows it: {state:?}"),
    )
}

async fn wrong_infno_1003(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let mut request = request(&ctx, &person).await;
    let id = id_of(&request);
    if let Some(envelope) = request.envelope.as_mut() {
        envelope.infno = "9102".to_owned();
    }
    let answer = send(&ctx, request).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1003,
        "infcode 1003 (wrong transaction code)",
        || text(&answer),
    )?;
    nothing_opened(&ctx, &id).await
}

async fn region_not_hosted_1002(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let mut request = request(&ctx, &person).await;
    let id = id_of(&request);
    let elsewhere = ctx.settings.unhosted_region.clone();
    if let Some(envelope) = request.envelope.as_mut() {
        envelope.receiver_region_code.clone_from(&elsewhere);
    }
    if let Some(application) = request.application.as_mut() {
        application.trafout_admdvs.clone_from(&elsewhere);
    }
    let answer = send(&ctx, request).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1002,
        format!("infcode 1002 (wrong receiver): the target does not host {elsewhere}"),
        || text(&answer),
    )?;
    nothing_opened(&ctx, &id).await
}

async fn refusal_is_an_answer(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::RefusedArrears).await?;
    let request = request(&ctx, &person).await;
    let id = id_of(&request);
    let first = send(&ctx, request.clone()).await?;
    let refused = matches!(
        &first.decision,
        Some(Decision::Rejected(r)) if r.reason_code == RefusalReason::Arrears as i32
    );
    expect(
        infcode(first.reply.as_ref()) == 0 && refused,
        "infcode 0 and the request rejected REFUSAL_REASON_ARREARS",
        || text(&first),
    )?;
    let again = send(&ctx, request).await?;
    expect(
        again == first,
        "the same refusal when asked again with the same msgid",
        || text(&again),
    )?;
    let state = ctx.target_state(&id).await?;
    let view = state.as_ref().map(|s| TransferStateView(s.state));
    expect(
        view.is_none_or(|s| s.is(TransferState::Rejected)),
        "the refused transfer is REJECTED (or not kept) at the target",
        || format!("{state:?}"),
    )?;
    let forms = ctx
        .counterpart
        .arrivals(&id)
        .into_iter()
        .filter(|a| matches!(a.message, Received::Form(_)))
        .count();
    expect(forms == 0, "no form for a refused request", || {
        format!("{forms} forms came")
    })
}

async fn lost_answer_retried_once(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    ctx.counterpart.plan_forms(
        person.certno.expose_unmasked(),
        FormPlan::CreditLosingAnswers(1),
    );
    let request = request(&ctx, &person).await;
    let id = id_of(&request);
    let answer = send(&ctx, request.clone()).await?;
    accepted(&ctx, &request, &answer)?;
    let retried = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| {
            let forms = c
                .arrivals(&id)
                .into_iter()
                .filter(|a| matches!(a.message, Received::Form(_)))
                .count();
            (forms >= 2).then_some(forms)
        })
        .await;
    expect(
        retried.is_some(),
        "the form is sent again after the lost answer",
        || "the form came once and was not retried".into(),
    )?;
    completes(&ctx, &id).await?;
    one_form_msgid(&ctx, &id)
}

async fn batch_one_bad_message(ctx: Ctx) -> Checked {
    let mut people = Vec::new();
    let mut requests = Vec::new();
    for position in 0..3 {
        let person = ctx.person(Flow::CrossProvince).await?;
        let mut request = request(&ctx, &person).await;
        if position == 1
            && let Some(envelope) = request.envelope.as_mut()
        {
            envelope.infno = "9102".to_owned();
        }
        people.push(person);
        requests.push(request);
    }
    let ids: Vec<String> = requests.iter().map(id_of).collect();
    let answer = match ctx
        .batch_out(platform::SubmitTransferOutRequestsRequest {
            requests: requests.clone(),
        })
        .await
    {
        Ok(answer) => answer,
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            return Err(Verdict::Skip(
                "the target serves no SubmitTransferOutRequests (batches are optional)".into(),
            ));
        }
        Err(status) => return Err(unanswered("SubmitTransferOutRequests", &status)),
    };
    expect(
        answer.answers.len() == 3,
        "three answers for three messages",
        || format!("{} answers", answer.answers.len()),
    )?;
    for (position, (got, request)) in answer.answers.iter().zip(&requests).enumerate() {
        match (position, got.answer.as_ref()) {
            (1, Some(platform::transfer_out_answer::Answer::Response(r))) => {
                expect(
                    infcode(r.reply.as_ref()) == 1003,
                    "message #1 (infno 9102) is refused alone: infcode 1003",
                    || text(r),
                )?;
            }
            (1, Some(platform::transfer_out_answer::Answer::Failed(_))) => {}
            (_, Some(platform::transfer_out_answer::Answer::Response(r))) if position != 1 => {
                accepted(&ctx, request, r)?;
            }
            (_, other) => {
                return Err(Verdict::Fail {
                    expected: format!("an answer at position {position}"),
                    observed: format!("{other:?}"),
                });
            }
        }
    }
    nothing_opened(&ctx, &ids[1]).await?;
    for position in [0, 2] {
        form_arrives(&ctx, &ids[position], &people[position]).await?;
        completes(&ctx, &ids[position]).await?;
    }
    Ok(())
}

/// Starts a transfer whose forms the suite answers by `plan`, waits for the first form, moves
/// the target's clock past the deadlines and waits for the abort.
async fn until_aborted(ctx: &Ctx, plan: FormPlan) -> Result<(String, SyntheticPerson), Verdict> {
    if ctx.target.admin.is_none() {
        return Err(Verdict::Skip(
            "the target's clock cannot be moved: give --target-admin (AdminService.AdvanceClock) of a target on a test clock".into(),
        ));
    }
    let person = ctx.person(Flow::CrossProvince).await?;
    ctx.counterpart
        .plan_forms(person.certno.expose_unmasked(), plan);
    let request = request(ctx, &person).await;
    let id = id_of(&request);
    let answer = send(ctx, request.clone()).await?;
    accepted(ctx, &request, &answer)?;
    form_arrives(ctx, &id, &person).await?;
    // Just past the whole-process deadline (the form's 10 working days and 5 more): the abort
    // is due now, and its own answer's bound has not begun to run.
    let due = match &answer.decision {
        Some(Decision::Accepted(a)) => {
            chrono::NaiveDate::parse_from_str(&a.transfer_out_due_on, "%Y-%m-%d").ok()
        }
        _ => None,
    };
    let whole = due
        .and_then(|due| ctx.calendar.add_working_days(due, 5).ok())
        .map(|d| d.due_on);
    let today = china_date(ctx.now().await);
    let days = whole.map_or(40, |whole| (whole - today).num_days().max(0) + 1);
    ctx.advance_target_clock(Duration::from_secs(
        u64::try_from(days).unwrap_or(40) * 86_400,
    ))
    .await?;
    let aborted = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| {
            c.arrivals(&id)
                .into_iter()
                .any(|a| matches!(a.message, Received::Abort(_)))
                .then_some(())
        })
        .await;
    expect(
        aborted.is_some(),
        format!(
            "within {:?} of the deadline passing: an AbortTransfer (9104) for the unacknowledged transfer",
            ctx.settings.wait
        ),
        || "no abort came".into(),
    )?;
    Ok((id, person))
}

async fn abort_before_credit(ctx: Ctx) -> Checked {
    let (id, _person) = until_aborted(&ctx, FormPlan::Withhold).await?;
    ctx.until_target_state(
        &id,
        "the transfer ends without completing (the balance returned or paid out)",
        |s| s.is_terminal() && !s.is(TransferState::Completed),
    )
    .await?;
    let abort_at = ctx
        .counterpart
        .arrivals(&id)
        .into_iter()
        .position(|a| matches!(a.message, Received::Abort(_)));
    let forms_after = ctx
        .counterpart
        .arrivals(&id)
        .into_iter()
        .skip(abort_at.map_or(usize::MAX, |p| p + 1))
        .filter(|a| matches!(a.message, Received::Form(_)))
        .count();
    expect(
        forms_after == 0,
        "no form after the abort was answered not credited",
        || format!("{forms_after} forms came after it"),
    )?;
    ctx.no_violations(&id)?;
    Ok(())
}

async fn abort_after_credit(ctx: Ctx) -> Checked {
    let (id, _person) = until_aborted(&ctx, FormPlan::CreditSilently).await?;
    completes(&ctx, &id).await
}

/// What the suite credited of transfer `id` (the form's amount, and a matched remittance's
/// when the balance was remitted apart), checking the target completed it; `None` when the
/// suite credited nothing.
async fn credited_by_suite(ctx: &Ctx, id: &str) -> Result<Option<Money>, Verdict> {
    let Some(held) = ctx.counterpart.held(id) else {
        return Ok(None);
    };
    let Some(credit) = held.credit.clone() else {
        return Ok(None);
    };
    ctx.track(id);
    let mut amount = money("credited_amount", &credit.credited_amount)?;
    // A balance remitted apart: the form credited 0.00, the matched remittance the rest.
    if let Some(remitted) = held.matched() {
        let remitted = money("RemitBalance.amount", &remitted.amount)?;
        amount = amount.checked_add(remitted).unwrap_or(amount);
    }
    let state = ctx.target_state(id).await?;
    expect(
        state
            .as_ref()
            .is_some_and(|s| s.state == TransferState::Completed as i32),
        format!("transfer {id}, credited by the suite, is COMPLETED at the target"),
        || format!("{state:?}"),
    )?;
    Ok(Some(amount))
}

async fn conservation(ctx: Ctx) -> Checked {
    let ids = ctx.all_tracked();
    let mut credited = Vec::new();
    for id in &ids {
        if let Some(amount) = credited_by_suite(&ctx, id).await? {
            credited.push((id.clone(), amount));
        }
    }
    let Some(before) = ctx.baseline() else {
        return Ok(());
    };
    let Some(after) = ctx.target_totals().await else {
        return Ok(());
    };
    let delta = |field: &str, a: &str, b: &str| -> Result<rust_decimal::Decimal, Verdict> {
        Ok(money(field, b)?.to_decimal() - money(field, a)?.to_decimal())
    };
    let settled = delta(
        "settled_out_total",
        &before.settled_out_total,
        &after.settled_out_total,
    )?;
    let debited = delta(
        "debited_to_transit_total",
        &before.debited_to_transit_total,
        &after.debited_to_transit_total,
    )?;
    let in_transit = delta(
        "in_transit_total",
        &before.in_transit_total,
        &after.in_transit_total,
    )?;
    let returned = delta(
        "returned_total",
        &before.returned_total,
        &after.returned_total,
    )?;
    let paid = delta(
        "paid_to_bank_total",
        &before.paid_to_bank_total,
        &after.paid_to_bank_total,
    )?;
    let sum: rust_decimal::Decimal = credited.iter().map(|(_, m)| m.to_decimal()).sum();
    expect(
        settled == sum,
        format!("the target's settled_out_total grew by exactly what the suite credited, {sum}"),
        || format!("it grew by {settled} (was the target otherwise idle?)"),
    )?;
    expect(
        in_transit.is_zero() && debited == settled + returned + paid,
        "nothing left in transit, and debited = settled + returned + paid to bank, to the cent",
        || {
            format!(
                "debited {debited}, settled {settled}, returned {returned}, paid {paid}, in transit {in_transit}"
            )
        },
    )
}
