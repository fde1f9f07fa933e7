//! A transfer's trace: the spans of its steps, and the trace context it keeps in its document.
//!
//! Every step of a transfer runs inside a span of target [`TARGET`] with a `transfer_id` field,
//! so every log line of the step names the transfer, and — when traces are exported — the span
//! is one of the transfer's trace. The span that opens a transfer at a bureau (the application,
//! or the first message received about it) is written into its document (`Step::save`); a later
//! step without a live parent (a timer, an operator) starts from that stored context. A message
//! leaves through the outbox long after its step: its delivery attempt's span (`send …`) is a
//! child of the stored context, travels in the call's metadata, and is the parent of both the
//! receiver's step (`receive …`) and the sender's step that applies the answer (`answer …`).
//!
//! | span | where | parent |
//! | --- | --- | --- |
//! | `application` | the bureau a person applied at | the client's `traceparent`, if any |
//! | `receive <kind>` | the receiving bureau's step | the sender's `send <kind>` (metadata) |
//! | `send <kind>` | one delivery attempt of an outbox message | the transfer's stored context |
//! | `answer <kind>` | the step applying its answer (or rescheduling) | `send <kind>` |
//! | `timer <state>` | a timer's step (`sweep.rs`) | the transfer's stored context |
//! | `resolve` | an operator's resolution | the transfer's stored context |
//!
//! With traces off no context is read, stored or sent: the spans only give log lines their
//! `transfer_id`.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use yibao_runtime::telemetry;
pub use yibao_runtime::telemetry::{TARGET, enabled};

use crate::document::{TraceContext, TransferDocument};
use crate::messages::Kind;

/// The short name a message kind's spans carry: `request`, `form`, `settlement`, `abort`,
/// `remittance`, `return`, `query`, `payout`.
pub fn kind_name(kind: Option<Kind>) -> &'static str {
    match kind {
        Some(Kind::RequestTransferOut) => "request",
        Some(Kind::DeliverForm) => "form",
        Some(Kind::ConfirmSettlement) => "settlement",
        Some(Kind::Abort) => "abort",
        Some(Kind::RemitBalance) => "remittance",
        Some(Kind::ReturnRemittance) => "return",
        Some(Kind::QueryTransferOut) => "query",
        Some(Kind::BankPayout) => "payout",
        None => "unknown",
    }
}

/// Sets `span`'s parent when traces are exported (and `parent` names a span: otherwise the span
/// starts a trace of its own).
fn parented(span: Span, parent: Context) -> Span {
    if enabled() {
        // An error only means the span is not exported (filtered out): nothing to parent.
        let _ = span.set_parent(parent);
    }
    span
}

/// The span of an application through the bureau API; its `transfer_id` is recorded once
/// minted (`Step::mint_transfer_id`), or once known for a repeated application.
pub fn application(parent: Context) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "application",
        otel.kind = "server",
        transfer_id = tracing::field::Empty,
    );
    parented(span, parent)
}

/// The span of a received platform message's step.
pub fn received(kind: Kind, transfer_id: &str, msgid: &str, parent: Context) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "receive",
        otel.name = format_args!("receive {}", kind_name(Some(kind))),
        otel.kind = "server",
        transfer_id,
        msgid,
    );
    parented(span, parent)
}

/// The span of one delivery attempt of an outbox message.
pub fn sending(kind: Option<Kind>, transfer_id: &str, msgid: &str, parent: Context) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "send",
        otel.name = format_args!("send {}", kind_name(kind)),
        otel.kind = "client",
        transfer_id,
        msgid,
    );
    parented(span, parent)
}

/// The span of the step that applies a message's answer (or reschedules it).
pub fn answer(kind: Option<Kind>, transfer_id: &str, msgid: &str, parent: Context) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "answer",
        otel.name = format_args!("answer {}", kind_name(kind)),
        transfer_id,
        msgid,
    );
    parented(span, parent)
}

/// The span of a timer's step on one transfer.
pub fn timer(state: &str, transfer_id: &str, parent: Context) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "timer",
        otel.name = format_args!("timer {state}"),
        transfer_id,
    );
    parented(span, parent)
}

/// The span of an operator's resolution of one transfer.
pub fn resolve(transfer_id: &str, parent: Context) -> Span {
    let span = tracing::info_span!(target: TARGET, "resolve", transfer_id);
    parented(span, parent)
}

/// The context a document keeps; empty when it keeps none (or one that does not parse: a
/// trace is never a reason to fail a step).
pub fn stored(document: &TransferDocument) -> Context {
    document.trace.as_ref().map_or_else(Context::new, |trace| {
        telemetry::context_of(&trace.traceparent, &trace.tracestate)
    })
}

/// The current span's context, to keep in a document, when traces are exported and the span
/// is one of them.
pub fn current() -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    telemetry::headers_of(&context).map(|(traceparent, tracestate)| TraceContext {
        traceparent,
        tracestate,
    })
}

/// A span's own context (to hand to its children elsewhere); empty with traces off.
pub fn context_of(span: &Span) -> Context {
    if enabled() {
        span.context()
    } else {
        Context::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_a_trace_or_with_a_broken_one_has_no_parent() {
        let mut document = TransferDocument::opening(
            "150100202611300000001".to_owned(),
            yibao_domain::transfer::Initiator::TransferIn,
            yibao_domain::transfer::TransferState::In(
                yibao_domain::transfer::in_side::InState::Applied,
            ),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("a day"),
            chrono::DateTime::UNIX_EPOCH,
        );
        assert!(!stored(&document).span().span_context().is_valid());
        document.trace = Some(TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: String::new(),
        });
        let context = stored(&document);
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        document.trace = Some(TraceContext {
            traceparent: "not a traceparent".to_owned(),
            tracestate: String::new(),
        });
        assert!(!stored(&document).span().span_context().is_valid());
    }

    #[test]
    fn every_kind_has_a_short_span_name() {
        let names: Vec<_> = [
            Kind::RequestTransferOut,
            Kind::DeliverForm,
            Kind::ConfirmSettlement,
            Kind::Abort,
            Kind::RemitBalance,
            Kind::QueryTransferOut,
            Kind::BankPayout,
        ]
        .into_iter()
        .map(|kind| kind_name(Some(kind)))
        .collect();
        assert_eq!(
            names,
            [
                "request",
                "form",
                "settlement",
                "abort",
                "remittance",
                "query",
                "payout"
            ]
        );
    }
}
