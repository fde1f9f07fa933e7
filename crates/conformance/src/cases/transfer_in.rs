//! Cases against a transfer-in bureau: the suite plays transfer-out, delivers forms, aborts and
//! asks, and answers the target's requests.

use std::time::Duration;

use yibao_domain::money::Money;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::common::v1::{RefusalReason, TransferState};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::credit_acknowledgement::Outcome;

use super::{Case, money, unanswered};
use crate::Role;
use crate::context::{Checked, Ctx, Verdict, expect, form_answer_text, reply_text};
use crate::counterpart::Received;

/// The role these cases test (the `case!` macro of `cases.rs` reads it).
const ROLE: Role = Role::TransferIn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "form-credited",
            form_credited,
            "A form for a transfer started at transfer-out opens the transfer and is credited: infcode 0, the balance credited to the cent, the transfer credited or completed (DOMAIN.md, the transfer, steps 4-5; platform.proto DeliverInsuranceRecord)."
        ),
        case!(
            "applied-transfer-completes",
            applied_transfer_completes,
            "An application at the target becomes a RequestTransferOut (9101) with the application's regions and a transfer id of the target's region; after the form it is credited and completed (DOMAIN.md, the transfer, steps 1-5)."
        ),
        case!(
            "repeated-msgid-same-answer",
            repeated_msgid_same_answer,
            "A form sent again with the same msgid and body gets the first answer again, unchanged, inf_refmsgid included (platform.proto, Idempotency)."
        ),
        case!(
            "modified-body-1004",
            modified_body_1004,
            "A form sent again with the same msgid but another body is infcode 1004 and changes nothing (platform.proto, Idempotency)."
        ),
        case!(
            "wrong-infno-1003",
            wrong_infno_1003,
            "DeliverInsuranceRecord with infno 9101 is infcode 1003 and opens nothing (platform.proto, reply codes)."
        ),
        case!(
            "region-not-hosted-1002",
            region_not_hosted_1002,
            "A form addressed to a region the target does not host is infcode 1002 and opens nothing (platform.proto, Envelope.receiver_region_code)."
        ),
        case!(
            "abort-before-credit",
            abort_before_credit,
            "An abort of a transfer the target never credited is answered credited = false, and the transfer is remembered as aborted (platform.proto AbortTransfer)."
        ),
        case!(
            "form-after-abort-refused",
            form_after_abort_refused,
            "A form arriving after its transfer was aborted is refused REFUSAL_REASON_ABORTED, nothing credited (platform.proto AbortTransfer)."
        ),
        case!(
            "abort-after-credit",
            abort_after_credit,
            "An abort of a credited transfer is answered credited = true with the credit made, and the transfer stays credited (platform.proto AbortTransfer)."
        ),
        case!(
            "lost-answer-retried-once",
            lost_answer_retried_once,
            "A form whose answer was lost, resent unchanged, gets the same answer; a second delivery under a new msgid is answered from the transfer's state; the balance is credited exactly once (platform.proto, Idempotency; DOMAIN.md, exactly once)."
        ),
        case!(
            "batch-one-bad-message",
            batch_one_bad_message,
            "In a SubmitTransferInMessages batch, one bad message gets its own refusal and the others are credited as if sent alone (platform.proto, Batches). Skipped when the target serves no batch RPC (batches are optional)."
        ),
        case!(
            "deadline-form-never-arrives",
            deadline_form_never_arrives,
            "When the accepted transfer's form never comes, the target ends the transfer once its deadlines pass on its test clock, and credits nothing (DOMAIN.md, deadlines: 10 and 15 working days)."
        ),
        case!(
            "conservation-to-the-cent",
            conservation,
            "Every balance the suite sent in a form was credited or definitely refused, to the cent; the target's credited total grew by exactly what it answered credited (DOMAIN.md, conservation of money)."
        ),
    ]
}

/// A form request for `person` under a fresh transfer id, held by the suite: the id and the
/// request.
async fn new_form(
    ctx: &Ctx,
    person: &SyntheticPerson,
) -> (String, platform::DeliverInsuranceRecordRequest) {
    let id = ctx.new_transfer_id().await;
    let form = ctx.form(person, &id).await;
    ctx.counterpart.hold(&id, person.certno.expose_unmasked());
    if let Ok(mut tally) = ctx.tally.lock() {
        tally.sent.push((id.clone(), person.balance));
    }
    let request = platform::DeliverInsuranceRecordRequest {
        envelope: Some(ctx.envelope("9102", &id)),
        form: Some(form),
    };
    (id, request)
}

fn credit_of(answer: &platform::DeliverInsuranceRecordResponse) -> Option<&platform::Credited> {
    match answer.acknowledgement.as_ref()?.outcome.as_ref()? {
        Outcome::Credited(credit) => Some(credit),
        Outcome::Refused(_) => None,
    }
}

/// Checks an answer credits `person`'s balance to the cent.
fn credits_balance(
    answer: &platform::DeliverInsuranceRecordResponse,
    person: &SyntheticPerson,
) -> Checked {
    let credit =
        credit_of(answer).filter(|_| answer.reply.as_ref().is_some_and(|r| r.infcode == 0));
    let Some(credit) = credit else {
        return Err(Verdict::Fail {
            expected: "infcode 0 and the acknowledgement credited".into(),
            observed: form_answer_text(answer),
        });
    };
    let amount = money("credited.credited_amount", &credit.credited_amount)?;
    expect(
        amount == person.balance,
        format!(
            "credited_amount equals the form's balance, {}",
            person.balance
        ),
        || format!("credited_amount {amount}"),
    )
}

async fn deliver(
    ctx: &Ctx,
    request: platform::DeliverInsuranceRecordRequest,
) -> Result<platform::DeliverInsuranceRecordResponse, Verdict> {
    ctx.deliver(request)
        .await
        .map_err(|status| unanswered("DeliverInsuranceRecord", &status))
}

fn infcode(reply: Option<&platform::Reply>) -> i32 {
    reply.map_or(-1, |r| r.infcode)
}

fn credited_or_completed(state: crate::context::TransferStateView) -> bool {
    state.is(TransferState::Credited) || state.is(TransferState::Completed)
}

async fn form_credited(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, request) = new_form(&ctx, &person).await;
    let answer = deliver(&ctx, request).await?;
    credits_balance(&answer, &person)?;
    ctx.until_target_state(
        &id,
        "the transfer is CREDITED or COMPLETED",
        credited_or_completed,
    )
    .await?;
    Ok(())
}

async fn applied_transfer_completes(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvince).await?;
    let certno = person.certno.expose_unmasked().to_owned();
    let id = ctx.apply_at_target(&person).await?;
    let requested = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| c.requested_transfer_of(&certno))
        .await;
    expect(
        requested.as_deref() == Some(id.as_str()),
        format!("a RequestTransferOut (9101) for the application, under its transfer id {id}"),
        || format!("{requested:?}"),
    )?;
    let application = ctx
        .counterpart
        .arrivals(&id)
        .into_iter()
        .find_map(|a| match a.message {
            Received::Request(r) => r.application,
            _ => None,
        });
    let application = application.unwrap_or_default();
    expect(
        application.trafout_admdvs == ctx.identity.own_region
            && application.trafin_admdvs == ctx.identity.target_region
            && id.starts_with(&ctx.identity.target_region),
        "the application names the suite's region as trafout_admdvs, the target's as trafin_admdvs, and a transfer id minted by the target's region",
        || {
            format!(
                "trafout_admdvs {}, trafin_admdvs {}, transfer id {id}",
                application.trafout_admdvs, application.trafin_admdvs
            )
        },
    )?;
    ctx.no_violations(&id)?;
    let mut form = ctx.form(&person, &id).await;
    form.initiator = yibao_proto::common::v1::Initiator::TransferInBureau as i32;
    if let Ok(mut tally) = ctx.tally.lock() {
        tally.sent.push((id.clone(), person.balance));
    }
    let answer = deliver(
        &ctx,
        platform::DeliverInsuranceRecordRequest {
            envelope: Some(ctx.envelope("9102", &id)),
            form: Some(form),
        },
    )
    .await?;
    credits_balance(&answer, &person)?;
    ctx.until_target_state(&id, "the transfer is COMPLETED", |s| {
        s.is(TransferState::Completed)
    })
    .await?;
    ctx.no_violations(&id)
}

async fn repeated_msgid_same_answer(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (_, request) = new_form(&ctx, &person).await;
    let first = deliver(&ctx, request.clone()).await?;
    credits_balance(&first, &person)?;
    let second = deliver(&ctx, request).await?;
    crate::context::same_answer(&first, &second, form_answer_text)
}

async fn modified_body_1004(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (_, request) = new_form(&ctx, &person).await;
    let first = deliver(&ctx, request.clone()).await?;
    credits_balance(&first, &person)?;
    let mut modified = request.clone();
    if let Some(form) = modified.form.as_mut() {
        let more = person
            .balance
            .checked_add(Money::from_cents(100).unwrap_or_default());
        form.personal_account_balance = more.unwrap_or(person.balance).to_string();
    }
    let answer = deliver(&ctx, modified).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1004 && credit_of(&answer).is_none(),
        "infcode 1004 (modified request) and no acknowledgement",
        || form_answer_text(&answer),
    )?;
    let again = deliver(&ctx, request).await?;
    expect(
        again == first,
        "the original request still gets its first answer: nothing changed",
        || form_answer_text(&again),
    )
}

async fn wrong_infno_1003(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, mut request) = new_form(&ctx, &person).await;
    if let Some(envelope) = request.envelope.as_mut() {
        envelope.infno = "9101".to_owned();
    }
    let answer = deliver(&ctx, request).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1003,
        "infcode 1003 (wrong transaction code)",
        || form_answer_text(&answer),
    )?;
    nothing_opened(&ctx, &id).await
}

async fn nothing_opened(ctx: &Ctx, id: &str) -> Checked {
    if let Ok(mut tally) = ctx.tally.lock() {
        tally.sent.retain(|(sent, _)| sent != id);
    }
    let state = ctx.target_state(id).await?;
    expect(
        state.is_none(),
        format!("nothing written: a query about {id} is answered 1005 (unknown)"),
        || format!("the target knows it: {state:?}"),
    )
}

async fn region_not_hosted_1002(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, mut request) = new_form(&ctx, &person).await;
    let elsewhere = ctx.settings.unhosted_region.clone();
    if let Some(envelope) = request.envelope.as_mut() {
        envelope.receiver_region_code.clone_from(&elsewhere);
    }
    if let Some(form) = request.form.as_mut() {
        form.trafin_admdvs.clone_from(&elsewhere);
    }
    let answer = deliver(&ctx, request).await?;
    expect(
        infcode(answer.reply.as_ref()) == 1002,
        format!("infcode 1002 (wrong receiver): the target does not host {elsewhere}"),
        || form_answer_text(&answer),
    )?;
    nothing_opened(&ctx, &id).await
}

async fn abort(ctx: &Ctx, id: &str) -> Result<platform::AbortTransferResponse, Verdict> {
    ctx.abort(platform::AbortTransferRequest {
        envelope: Some(ctx.envelope("9104", id)),
        transfer_id: id.to_owned(),
        reason_code: RefusalReason::DeadlineExpired as i32,
        reason: "the suite gives up waiting for the acknowledgement".to_owned(),
    })
    .await
    .map_err(|status| unanswered("AbortTransfer", &status))
}

async fn abort_before_credit(ctx: Ctx) -> Checked {
    let id = ctx.new_transfer_id().await;
    let answer = abort(&ctx, &id).await?;
    expect(
        infcode(answer.reply.as_ref()) == 0 && !answer.credited && answer.credit.is_none(),
        "infcode 0 and credited = false, with no credit",
        || {
            format!(
                "{}, credited = {}",
                reply_text(answer.reply.as_ref()),
                answer.credited
            )
        },
    )?;
    let state = ctx
        .until_target_state(&id, "the target remembers the transfer as ABORTED", |s| {
            s.is(TransferState::Aborted)
        })
        .await;
    state.map(|_| ())
}

async fn form_after_abort_refused(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, request) = new_form(&ctx, &person).await;
    let aborted = abort(&ctx, &id).await?;
    expect(
        !aborted.credited,
        "the abort answered credited = false",
        || "credited = true".into(),
    )?;
    let answer = deliver(&ctx, request).await?;
    let refused = match answer
        .acknowledgement
        .as_ref()
        .and_then(|a| a.outcome.as_ref())
    {
        Some(Outcome::Refused(r)) => r.reason_code == RefusalReason::Aborted as i32,
        _ => false,
    };
    expect(
        infcode(answer.reply.as_ref()) == 0 && refused,
        "infcode 0 and the form refused REFUSAL_REASON_ABORTED",
        || form_answer_text(&answer),
    )
}

async fn abort_after_credit(ctx: Ctx) -> Checked {
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, request) = new_form(&ctx, &person).await;
    let answer = deliver(&ctx, request).await?;
    credits_balance(&answer, &person)?;
    let aborted = abort(&ctx, &id).await?;
    let amount = aborted
        .credit
        .as_ref()
        .map(|c| c.credited_amount.clone())
        .unwrap_or_default();
    expect(
        infcode(aborted.reply.as_ref()) == 0 && aborted.credited,
        "infcode 0 and credited = true",
        || {
            format!(
                "{}, credited = {}",
                reply_text(aborted.reply.as_ref()),
                aborted.credited
            )
        },
    )?;
    let amount = money("credit.credited_amount", &amount)?;
    expect(
        amount == person.balance,
        format!("the credit's amount, {}", person.balance),
        || format!("{amount}"),
    )?;
    ctx.until_target_state(
        &id,
        "the transfer stays CREDITED or COMPLETED",
        credited_or_completed,
    )
    .await
    .map(|_| ())
}

async fn lost_answer_retried_once(ctx: Ctx) -> Checked {
    let before = ctx.target_totals().await;
    let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
    let (id, request) = new_form(&ctx, &person).await;
    // The first answer is "lost": the suite acts as if it never read it.
    let _lost = ctx.deliver(request.clone()).await;
    let retried = deliver(&ctx, request.clone()).await?;
    credits_balance(&retried, &person)?;
    let mut fresh = request;
    fresh.envelope = Some(ctx.envelope("9102", &id));
    let again = deliver(&ctx, fresh).await?;
    credits_balance(&again, &person)?;
    if let (Some(before), Some(after)) = (before, ctx.target_totals().await) {
        let grew = money("credited_total", &after.credited_total)?.to_decimal()
            - money("credited_total", &before.credited_total)?.to_decimal();
        expect(
            grew == person.balance.to_decimal(),
            format!(
                "the target's credited_total grows by the balance once, {}",
                person.balance
            ),
            || format!("it grew by {grew} (is anything else running at the target?)"),
        )?;
    }
    Ok(())
}

async fn batch_one_bad_message(ctx: Ctx) -> Checked {
    let mut people = Vec::new();
    let mut messages = Vec::new();
    let mut bad_id = String::new();
    for position in 0..3 {
        let person = ctx.person(Flow::CrossProvinceOutInitiated).await?;
        let (id, mut request) = new_form(&ctx, &person).await;
        if position == 1
            && let Some(envelope) = request.envelope.as_mut()
        {
            envelope.infno = "9101".to_owned();
            bad_id = id;
        }
        people.push(person);
        messages.push(platform::TransferInMessage {
            message: Some(platform::transfer_in_message::Message::DeliverInsuranceRecord(request)),
        });
    }
    let answer = match ctx
        .batch_in(platform::SubmitTransferInMessagesRequest { messages })
        .await
    {
        Ok(answer) => answer,
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            if let Ok(mut tally) = ctx.tally.lock() {
                let n = tally.sent.len();
                tally.sent.truncate(n.saturating_sub(3));
            }
            return Err(Verdict::Skip(
                "the target serves no SubmitTransferInMessages (batches are optional)".into(),
            ));
        }
        Err(status) => return Err(unanswered("SubmitTransferInMessages", &status)),
    };
    batch_answers_hold(&answer, &people)?;
    nothing_opened(&ctx, &bad_id).await
}

/// The batch's answers: the good messages credited, the bad one (#1) refused alone.
fn batch_answers_hold(
    answer: &platform::SubmitTransferInMessagesResponse,
    people: &[SyntheticPerson],
) -> Checked {
    expect(
        answer.answers.len() == 3,
        "three answers for three messages",
        || format!("{} answers", answer.answers.len()),
    )?;
    for (position, person) in people.iter().enumerate() {
        let got = answer.answers.get(position).and_then(|a| a.answer.as_ref());
        if position == 1 {
            let refused = match got {
                Some(platform::transfer_in_answer::Answer::DeliverInsuranceRecord(r)) => {
                    infcode(r.reply.as_ref()) == 1003
                }
                Some(platform::transfer_in_answer::Answer::Failed(_)) => true,
                _ => false,
            };
            expect(
                refused,
                "message #1 (infno 9101) is refused alone: infcode 1003",
                || format!("{got:?}"),
            )?;
        } else {
            match got {
                Some(platform::transfer_in_answer::Answer::DeliverInsuranceRecord(r)) => {
                    credits_balance(r, person)?
                }
                other => {
                    return Err(Verdict::Fail {
                        expected: format!("message #{position} is credited as if sent alone"),
                        observed: format!("{other:?}"),
                    });
                }
            }
        }
    }
    Ok(())
}

async fn deadline_form_never_arrives(ctx: Ctx) -> Checked {
    if ctx.target.admin.is_none() {
        return Err(Verdict::Skip(
            "the target's clock cannot be moved: give --target-admin (AdminService.AdvanceClock) of a target on a test clock".into(),
        ));
    }
    let person = ctx.person(Flow::CrossProvince).await?;
    let certno = person.certno.expose_unmasked().to_owned();
    let id = ctx.apply_at_target(&person).await?;
    let requested = ctx
        .counterpart
        .wait_for(ctx.settings.wait, |c| c.requested_transfer_of(&certno))
        .await;
    expect(
        requested.is_some(),
        "a RequestTransferOut for the application",
        || "none came".into(),
    )?;
    // The suite accepted and will never send the form.
    ctx.advance_target_clock(Duration::from_secs(40 * 86_400))
        .await?;
    let ended = ctx
        .until_target_state(
            &id,
            "the transfer ended without a credit (REJECTED or ABORTED) after its deadlines",
            |s| s.is_terminal() && !s.is(TransferState::Completed),
        )
        .await?;
    ctx.no_violations(&id)?;
    expect(
        ended.state != TransferState::Completed as i32,
        "nothing credited",
        || "COMPLETED".into(),
    )
}

async fn conservation(ctx: Ctx) -> Checked {
    let sent = ctx.tally.lock().map(|t| t.sent.clone()).unwrap_or_default();
    let mut credited = Money::ZERO;
    let mut returned = Money::ZERO;
    let mut open = Vec::new();
    for (id, balance) in &sent {
        ctx.track(id);
        let state = ctx.target_state(id).await?;
        let view = state
            .as_ref()
            .map(|s| crate::context::TransferStateView(s.state));
        match view {
            Some(s) if credited_or_completed(s) => {
                credited = credited.checked_add(*balance).unwrap_or(credited)
            }
            Some(s) if s.is_terminal() => {
                returned = returned.checked_add(*balance).unwrap_or(returned)
            }
            _ => open.push(format!(
                "{id}: {}",
                state.map_or("unknown".into(), |s| crate::context::describe_snapshot(&s))
            )),
        }
    }
    expect(
        open.is_empty(),
        "every form the suite sent ended credited or definitely refused at the target",
        || open.join("; "),
    )?;
    let total: Option<Money> = Money::checked_sum(sent.iter().map(|(_, b)| *b));
    expect(
        total == credited.checked_add(returned),
        "what the suite sent = credited + refused, to the cent",
        || format!("sent {total:?}, credited {credited}, refused {returned}"),
    )?;
    if let (Some(before), Some(after)) = (ctx.baseline(), ctx.target_totals().await) {
        let grew = money("credited_total", &after.credited_total)?.to_decimal()
            - money("credited_total", &before.credited_total)?.to_decimal();
        expect(
            grew == credited.to_decimal(),
            format!(
                "the target's credited_total grew by exactly what it credited the suite's forms, {credited}"
            ),
            || format!("it grew by {grew} (was the target otherwise idle?)"),
        )?;
    }
    Ok(())
}
