//! Insurance certificates (参保凭证): issuing one from the person's record (a step, which stores
//! it for verification) and reading a stored one back. What a certificate states is the domain's
//! rule (`yibao_domain::certificate`); this module keeps the printed content. A stored
//! certificate that does not decode is an error, never a blank certificate.

use serde::{Deserialize, Serialize};
use yibao_domain::certificate::{self, CertificateRecord};
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::month::YearMonth;
use yibao_domain::scheme::Scheme;
use yibao_store::Tx;

use crate::error::Error;
use crate::record::Step;

/// What a certificate says, as printed and stored for verification. `insutype` is the scheme as
/// the certificate printed it (the contract's value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateBody {
    /// Not in the certificates of earlier versions: the row's code is used then.
    #[serde(default)]
    pub code: String,
    /// The holder's name.
    pub psn_name: String,
    /// The holder's ID number.
    pub certno: String,
    /// The scheme, as printed.
    pub insutype: i32,
    /// The insuring region's code.
    pub region: String,
    /// The insuring region's name.
    pub region_name: String,
    /// Insured from (YYYYMM).
    pub from: String,
    /// Insured to (YYYYMM).
    pub to: String,
    /// Benefits to (YYYYMM).
    pub benefits_to: String,
    /// The personal-account balance, as printed.
    pub balance: String,
    /// When it was printed.
    pub printed_at: chrono::DateTime<chrono::Utc>,
}

/// A stored certificate, decoded and checked.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// What it says.
    pub body: CertificateBody,
    /// The holder.
    pub holder: ResidentId,
    /// The balance.
    pub balance: Money,
}

/// Issues a certificate from the person's record, if the domain's rule allows one for a caller
/// giving `given_name` ([`certificate::may_issue_certificate`]), and stores it for
/// verification. `printed` says how the scheme is printed. The verification code carries 100
/// bits from the thread's cryptographically secure generator.
pub fn issue(
    step: &mut Step<'_>,
    certno: &str,
    given_name: &str,
    printed: fn(Scheme) -> i32,
) -> Result<Certificate, Error> {
    let person = step.person(certno)?;
    let record = person.as_ref().map(|person| CertificateRecord {
        name_on_record: &person.row.psn_name,
        enrolment: person.facts.enrolment,
        periods: &person.periods,
    });
    let months = certificate::may_issue_certificate(record.as_ref(), given_name)?;
    let Some(person) = person else {
        return Err(Error::Internal(
            "the certificate rule accepted a person it does not know".to_owned(),
        ));
    };
    let balance = Money::from_cents(step.balance_of(certno)?)
        .map_err(|_| Error::Internal("balance out of range".to_owned()))?;
    let region_name = step
        .ctx
        .site
        .directory
        .region(person.facts.region)
        .map(|entry| entry.name_zh.clone())
        .unwrap_or_default();
    let code = certificate::verification_code(rand::random::<u128>());
    let text = |month: Option<YearMonth>| month.map(|m| m.to_string()).unwrap_or_default();
    let body = CertificateBody {
        code: code.clone(),
        psn_name: person.row.psn_name.clone(),
        certno: certno.to_owned(),
        insutype: printed(person.facts.scheme),
        region: person.row.insu_admdvs.clone(),
        region_name,
        from: months.insured_from.to_string(),
        to: months.insured_to.to_string(),
        benefits_to: text(months.benefits_to),
        balance: balance.to_string(),
        printed_at: step.ctx.now,
    };
    let json = serde_json::to_string(&body)
        .map_err(|error| Error::Internal(format!("certificate: {error}")))?;
    step.tx
        .put_certificate(&code, certno, &json, step.ctx.now)?;
    checked(body)
}

/// The certificate with this verification code, if one was issued.
pub fn find(tx: &mut dyn Tx, code: &str) -> Result<Option<Certificate>, Error> {
    let Some(row) = tx.certificate(code)? else {
        return Ok(None);
    };
    let mut body: CertificateBody = serde_json::from_str(&row.body_json)
        .map_err(|error| Error::unreadable("stored certificate", &error))?;
    body.code = row.code;
    checked(body).map(Some)
}

/// A certificate body with its holder and balance checked.
fn checked(body: CertificateBody) -> Result<Certificate, Error> {
    let broken = |what: &str| Error::Internal(format!("stored certificate has {what}"));
    let holder = ResidentId::parse(&body.certno).map_err(|_| broken("a bad ID number"))?;
    let balance = Money::parse(&body.balance).map_err(|_| broken("a bad balance"))?;
    Ok(Certificate {
        body,
        holder,
        balance,
    })
}

#[cfg(test)]
mod tests {
    use yibao_domain::population::Flow;
    use yibao_domain::transfer::RefusalReason;
    use yibao_runtime::directory::BureauRole;

    use super::*;
    use crate::testing::{self, services};

    /// Issues a certificate at `services` for `certno`, asking as `name`.
    async fn issue_as(
        services: &crate::services::Services,
        certno: &str,
        name: &str,
    ) -> Result<Certificate, Error> {
        let (certno, name) = (certno.to_owned(), name.to_owned());
        testing::step(services, move |step| issue(step, &certno, &name, |_| 310)).await
    }

    #[tokio::test]
    async fn a_person_who_stopped_contributing_gets_a_certificate_that_verifies() {
        let services = services(BureauRole::TransferOut);
        let person = testing::seed(&services, Flow::CrossProvince, 0).await;
        let certno = person.certno.expose_unmasked();
        let issued = issue_as(&services, certno, &person.name)
            .await
            .expect("issued");
        assert_eq!(issued.body.psn_name, person.name);
        assert_eq!(issued.balance, person.balance);
        let code = issued.body.code.clone();
        assert_eq!(
            certificate::normalize_verification_code(&code),
            Some(code.clone())
        );
        let again = issue_as(&services, certno, &person.name)
            .await
            .expect("issued");
        assert_ne!(
            again.body.code, code,
            "every certificate has its own random code"
        );
        let found = testing::read(&services, move |tx| find(tx, &code))
            .await
            .expect("the certificate verifies");
        assert_eq!(found.body.code, issued.body.code);
        assert_eq!(found.holder, person.certno);
    }

    #[tokio::test]
    async fn a_wrong_name_is_refused_like_an_unknown_person() {
        let services = services(BureauRole::TransferOut);
        let person = testing::seed(&services, Flow::CrossProvince, 0).await;
        let stranger = testing::someone(Flow::CrossProvince, 1);
        let wrong = issue_as(&services, person.certno.expose_unmasked(), "某某某").await;
        let unknown = issue_as(&services, stranger.certno.expose_unmasked(), &stranger.name).await;
        for refused in [wrong, unknown] {
            assert!(
                matches!(refused, Err(Error::Refused(RefusalReason::UnknownPerson))),
                "{refused:?}"
            );
        }
        let still = testing::seed(&services, Flow::RefusedNotStopped, 0).await;
        let refused = issue_as(&services, still.certno.expose_unmasked(), &still.name).await;
        assert!(
            matches!(
                refused,
                Err(Error::Refused(RefusalReason::NotStoppedAtTransferOut))
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn each_certificate_refusal_is_a_failed_precondition_naming_its_rule() {
        use yibao_domain::certificate::CertificateRefusal;
        let status = |error: Error| tonic::Status::from(error);
        let trailer = |status: &tonic::Status| {
            status
                .metadata()
                .get("yibao-refusal-reason")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let unknown = status(CertificateRefusal::UnknownPerson.into());
        let as_apply_transfer = status(Error::Refused(RefusalReason::UnknownPerson));
        assert_eq!(
            (unknown.code(), unknown.message(), trailer(&unknown)),
            (
                as_apply_transfer.code(),
                as_apply_transfer.message(),
                trailer(&as_apply_transfer)
            )
        );
        for refusal in [
            CertificateRefusal::StillContributing,
            CertificateRefusal::NoContributionRecord,
        ] {
            let status = status(refusal.into());
            assert_eq!(status.code(), tonic::Code::FailedPrecondition);
            let name = format!("REFUSAL_REASON_{}", refusal.code());
            assert_eq!(trailer(&status), Some(name));
        }
        let none = status(CertificateRefusal::NoContributionRecord.into());
        assert!(
            none.message().contains("no contribution period"),
            "{none:?}"
        );
    }

    #[tokio::test]
    async fn a_certificate_of_an_earlier_release_still_verifies_by_its_fourteen_digits() {
        let services = services(BureauRole::TransferOut);
        let person = testing::seed(&services, Flow::CrossProvince, 0).await;
        let certno = person.certno.expose_unmasked().to_owned();
        // As an earlier release stored it: a 14-digit code, and no code in the body.
        let body = serde_json::json!({
            "psn_name": person.name,
            "certno": certno,
            "insutype": 310,
            "region": "150102",
            "region_name": "呼和浩特市",
            "from": "201507",
            "to": "202312",
            "benefits_to": "202401",
            "balance": "1234.50",
            "printed_at": "2025-06-01T02:00:00Z",
        })
        .to_string();
        let at = testing::start();
        testing::step(&services, move |step| {
            Ok(step
                .tx
                .put_certificate("15010000000042", &certno, &body, at)?)
        })
        .await
        .expect("stored");
        let code = certificate::normalize_verification_code("15010000000042").expect("legacy");
        let found = testing::read(&services, move |tx| find(tx, &code))
            .await
            .expect("an old certificate still verifies");
        assert_eq!(found.body.code, "15010000000042");
        assert_eq!(found.balance.to_string(), "1234.50");
    }
}
