//! Who may send a platform message: the checks on an envelope's parties, made before anything
//! reaches the store, with or without TLS. Nothing here knows a wire type.
//!
//! In order, each with its own answer (platform.proto's infcode table):
//! 1. over mutual TLS, the caller's certificate names the envelope's sender region
//!    (`PERMISSION_DENIED` otherwise; a caller without a certificate never gets this far:
//!    `UNAUTHENTICATED`);
//! 2. the region directory says the sender region is hosted by a bureau, and not by this one
//!    (every bureau plays both sides, so which side sends this message — the transfer-in side
//!    asks for transfers, the transfer-out side delivers forms and aborts — is the transfer's
//!    business, checked by the body's regions and the drivers) — infcode 1007;
//! 3. the msgid begins with an institution code of that bureau: `B`, a region code the sender's
//!    bureau hosts (and, over TLS, its certificate names), five digits — infcode 1007;
//! 4. the transfer id was minted by one of the two parties: by the sender for a request (the
//!    transfer-in bureau mints the ids of applications made there), by the sender or the receiver
//!    otherwise — infcode 1008. A message that would create a transfer the receiver does not
//!    know must carry an id its sender minted; that rule is the drivers' (an unknown id minted
//!    by the receiver itself is an unknown transfer, 1005).

use std::sync::Arc;

use yibao_domain::region::{Pooling, RegionCode};
use yibao_domain::transfer::TransferId;
use yibao_runtime::directory::BureauRole;

use crate::context::Site;
use crate::inbox::Refusal;

/// How the platform listener is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Mutual TLS: every caller presents a certificate from the platform CA.
    MutualTls,
    /// Plaintext, an explicit opt-out for debugging on loopback.
    Plaintext,
}

/// The caller of a platform RPC as the listener knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Over mutual TLS: the regions its verified certificate names.
    Certified(Arc<[RegionCode]>),
    /// On a plaintext platform listener (an explicit opt-out): the envelope is all we know.
    Plaintext,
}

impl Caller {
    /// Whether the caller speaks for `region`: its certificate names `region`'s pooling region
    /// (as `pooling` groups codes).
    fn covers(&self, pooling: &Pooling, region: RegionCode) -> bool {
        match self {
            Caller::Certified(regions) => regions
                .iter()
                .any(|named| pooling.same_pooling_region(*named, region)),
            Caller::Plaintext => true,
        }
    }
}

/// Why a message was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller's certificate does not speak for the sender region (`PERMISSION_DENIED`).
    NotCertified(String),
    /// Answered with a non-zero infcode.
    Refused(Refusal),
}

/// The envelope's claims about who sends a message.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    /// The side that sends this message (named in refusals).
    pub sender_role: BureauRole,
    /// Whether the transfer id must have been minted by the sender (a transfer request).
    pub minted_by: Minter,
    /// The envelope's msgid (already checked to be 30 ASCII letters and digits).
    pub msgid: &'a str,
    /// `envelope.sender_region_code`.
    pub sender: &'a str,
    /// `envelope.receiver_region_code`, already checked to be hosted here.
    pub receiver: RegionCode,
    /// `envelope.transfer_id`.
    pub transfer_id: &'a str,
}

/// Who may have minted a message's transfer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Minter {
    /// Only the sender (a request for a transfer applied for at the sender's region).
    Sender,
    /// Either party.
    EitherParty,
}

/// Checks a message's parties (see the module docs); returns the sender region.
pub fn check(site: &Site, caller: &Caller, parties: &Parties<'_>) -> Result<RegionCode, Denied> {
    let sender = RegionCode::parse(parties.sender).map_err(|error| {
        Denied::Refused(Refusal::Invalid(format!(
            "envelope.sender_region_code: {error}"
        )))
    })?;
    let pooling = site.pooling();
    if !caller.covers(pooling, sender) {
        return Err(Denied::NotCertified(format!(
            "envelope.sender_region_code: the caller's certificate does not name region {sender}"
        )));
    }
    let role = parties.sender_role;
    let bureau = match site.directory.bureau_of(sender) {
        Some(bureau) if *bureau != site.name => bureau,
        Some(_) => {
            return Err(Denied::Refused(Refusal::UnknownSender(format!(
                "envelope.sender_region_code: region {sender} is hosted by this bureau itself; \
                 a {role} message comes from another bureau (region directory)"
            ))));
        }
        None => {
            return Err(Denied::Refused(Refusal::UnknownSender(format!(
                "envelope.sender_region_code: region {sender} is hosted by no bureau, so no \
                 {role} message comes from it (region directory)"
            ))));
        }
    };
    let institution = institution_region(parties.msgid).filter(|region| {
        site.directory.bureau_of(*region) == Some(bureau) && caller.covers(pooling, *region)
    });
    if institution.is_none() {
        return Err(Denied::Refused(Refusal::UnknownSender(
            "envelope.msgid: must begin with the sender's institution code: B, a region its \
             bureau hosts, 5 digits"
                .to_owned(),
        )));
    }
    if let Ok(id) = TransferId::parse(parties.transfer_id) {
        let minted = match parties.minted_by {
            Minter::Sender => id.minted_by(pooling, sender),
            Minter::EitherParty => {
                id.minted_by(pooling, sender) || id.minted_by(pooling, parties.receiver)
            }
        };
        if !minted {
            let who = match parties.minted_by {
                Minter::Sender => "the sender's region",
                Minter::EitherParty => "the sender's or the receiver's region",
            };
            return Err(Denied::Refused(Refusal::ForeignTransferId(format!(
                "envelope.transfer_id: minted by region {}, not by {who}",
                id.region()
            ))));
        }
    }
    Ok(sender)
}

/// The region of a msgid's institution code (`B` + 6-digit region + 5 digits), if it has one.
fn institution_region(msgid: &str) -> Option<RegionCode> {
    let institution = msgid.get(..12)?;
    let rest = institution.strip_prefix('B')?;
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    RegionCode::parse(&rest[..6]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn code(text: &str) -> RegionCode {
        RegionCode::parse(text).expect("code")
    }

    /// A request from Lhasa (hosted by transfer-in) to Hohhot (hosted by transfer-out).
    fn request<'a>(msgid: &'a str, sender: &'a str, transfer_id: &'a str) -> Parties<'a> {
        Parties {
            sender_role: BureauRole::TransferIn,
            minted_by: Minter::Sender,
            msgid,
            sender,
            receiver: code("150100"),
            transfer_id,
        }
    }

    const MSGID: &str = "B54010000002202603100930050001";
    const ID: &str = "540100202603100000001";

    #[test]
    fn a_well_addressed_request_is_admitted_with_or_without_tls() {
        let site = testing::site(BureauRole::TransferOut);
        let parties = request(MSGID, "540100", ID);
        assert_eq!(
            check(&site, &Caller::Plaintext, &parties),
            Ok(code("540100"))
        );
        let certified = Caller::Certified(Arc::from(vec![code("540100"), code("440300")]));
        assert_eq!(check(&site, &certified, &parties), Ok(code("540100")));
    }

    #[test]
    fn a_certificate_that_does_not_name_the_sender_region_is_denied() {
        let site = testing::site(BureauRole::TransferOut);
        let other = Caller::Certified(Arc::from(vec![code("440300")]));
        let denied = check(&site, &other, &request(MSGID, "540100", ID));
        assert!(matches!(denied, Err(Denied::NotCertified(_))), "{denied:?}");
    }

    #[test]
    fn a_sender_region_hosted_here_or_by_no_bureau_is_unknown() {
        let site = testing::site(BureauRole::TransferOut);
        // Hohhot is hosted by this bureau itself; Beijing by no one.
        for sender in ["150100", "110100"] {
            let denied = check(&site, &Caller::Plaintext, &request(MSGID, sender, ID));
            assert!(
                matches!(denied, Err(Denied::Refused(Refusal::UnknownSender(_)))),
                "{sender}: {denied:?}"
            );
        }
    }

    #[test]
    fn a_msgid_without_the_senders_institution_code_is_unknown() {
        let site = testing::site(BureauRole::TransferOut);
        for msgid in [
            "X54010000002202603100930050001",
            "B15010000001202603100930050001",
            "B5401000000A202603100930050001",
        ] {
            let denied = check(&site, &Caller::Plaintext, &request(msgid, "540100", ID));
            assert!(
                matches!(denied, Err(Denied::Refused(Refusal::UnknownSender(_)))),
                "{msgid}: {denied:?}"
            );
        }
        // Over TLS the institution's region must be one the certificate names, too.
        let certified = Caller::Certified(Arc::from(vec![code("540100")]));
        let denied = check(
            &site,
            &certified,
            &request("B44030000002202603100930050001", "540100", ID),
        );
        assert!(matches!(
            denied,
            Err(Denied::Refused(Refusal::UnknownSender(_)))
        ));
    }

    #[test]
    fn a_request_must_carry_an_id_its_sender_minted() {
        let site = testing::site(BureauRole::TransferOut);
        let foreign = "150100202603100000001";
        let denied = check(
            &site,
            &Caller::Plaintext,
            &request(MSGID, "540100", foreign),
        );
        assert!(matches!(
            denied,
            Err(Denied::Refused(Refusal::ForeignTransferId(_)))
        ));
        // Other messages may name an id either party minted, but no third region's.
        let mut either = request(MSGID, "540100", foreign);
        either.minted_by = Minter::EitherParty;
        assert!(check(&site, &Caller::Plaintext, &either).is_ok());
        let mut third = request(MSGID, "540100", "440300202603100000001");
        third.minted_by = Minter::EitherParty;
        assert!(check(&site, &Caller::Plaintext, &third).is_err());
    }

    /// Three bureaus: a message from the third is admitted when its msgid carries that
    /// bureau's institution code, and refused when it carries another bureau's.
    #[test]
    fn any_other_bureau_may_send_under_its_own_institution_code() {
        let directory = testing::DIRECTORY.replacen(
            "code = \"540100\"\nname = \"Lhasa\"\nname_zh = \"拉萨市\"\nbureau = \"transfer-in\"",
            "code = \"540100\"\nname = \"Lhasa\"\nname_zh = \"拉萨市\"\nbureau = \"west\"",
            1,
        );
        assert_ne!(
            directory,
            testing::DIRECTORY,
            "Lhasa moved to a third bureau"
        );
        let site = testing::site_with(BureauRole::TransferOut, &directory);
        let west = Caller::Certified(Arc::from(vec![code("540100")]));
        assert_eq!(
            check(&site, &west, &request(MSGID, "540100", ID)),
            Ok(code("540100"))
        );
        // Shenzhen's code is transfer-in's, not the west bureau's.
        let denied = check(
            &site,
            &Caller::Plaintext,
            &request("B44030000002202603100930050001", "540100", ID),
        );
        assert!(matches!(
            denied,
            Err(Denied::Refused(Refusal::UnknownSender(_)))
        ));
    }
}
