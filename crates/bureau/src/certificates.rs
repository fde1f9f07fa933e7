//! Insurance certificates (参保凭证): issuing one from the person's record (a step, which stores
//! it for verification) and reading a stored one back. What a certificate states is the domain's
//! rule (`yibao_domain::certificate`); this module keeps the printed content. A stored
//! certificate that does not decode is an error, never a blank certificate.

use serde::{Deserialize, Serialize};
use yibao_domain::certificate;
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

/// Issues a certificate from the person's record and stores it for verification. `printed`
/// says how the scheme is printed.
pub fn issue(
    step: &mut Step<'_>,
    certno: &str,
    printed: fn(Scheme) -> i32,
) -> Result<Certificate, Error> {
    let person = step
        .person(certno)?
        .ok_or_else(|| Error::NotFound("person".to_owned()))?;
    let balance = Money::from_cents(step.balance_of(certno)?)
        .map_err(|_| Error::Internal("balance out of range".to_owned()))?;
    let months = certificate::certificate_months(&person.periods);
    let site = step.ctx.site.clone();
    let region_name = site
        .directory
        .region(person.facts.region.pooling_region())
        .map(|entry| entry.name_zh.clone())
        .unwrap_or_default();
    let issuer = site
        .hosted
        .first()
        .copied()
        .ok_or_else(|| Error::Internal("the bureau hosts no region".to_owned()))?;
    let sequence = step.tx.next_sequence("certificate")?;
    let code = certificate::verification_code(issuer, sequence)
        .ok_or_else(|| Error::FailedPrecondition("certificate numbers exhausted".to_owned()))?;
    let text = |month: Option<YearMonth>| month.map(|m| m.to_string()).unwrap_or_default();
    let body = CertificateBody {
        code: code.clone(),
        psn_name: person.row.psn_name.clone(),
        certno: certno.to_owned(),
        insutype: printed(person.facts.scheme),
        region: person.row.insu_admdvs.clone(),
        region_name,
        from: text(months.map(|m| m.insured_from)),
        to: text(months.map(|m| m.insured_to)),
        benefits_to: text(months.and_then(|m| m.benefits_to)),
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
        .map_err(|error| Error::Internal(format!("stored certificate unreadable: {error}")))?;
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
