//! Seeding the synthetic population into both bureaus: each writes its own view of the same
//! people (`AdminService.SeedPopulation`), so that a transfer between them has a person at both
//! ends. Seeding again is safe: people already present are left unchanged.

use yibao_proto::admin::v1::SeedPopulationRequest;

use crate::HarnessError;
use crate::admin::AdminClient;

/// The most people one `SeedPopulation` call may write.
pub const MAX_SEED_PER_CALL: u64 = 1_000_000;

/// Seeds persons `0..persons` of population `seed` into both bureaus, in calls of at most
/// [`MAX_SEED_PER_CALL`], both bureaus concurrently.
pub async fn seed_both(
    admin_out: &mut AdminClient,
    admin_in: &mut AdminClient,
    seed: u64,
    persons: u64,
) -> Result<(), HarnessError> {
    let mut first_index = 0;
    while first_index < persons {
        let count = (persons - first_index).min(MAX_SEED_PER_CALL);
        let request = SeedPopulationRequest {
            seed,
            first_index,
            count,
        };
        let (out, inn) = tokio::join!(
            admin_out.seed_population(request),
            admin_in.seed_population(request),
        );
        out.map_err(HarnessError::rpc("transfer-out", "SeedPopulation"))?;
        inn.map_err(HarnessError::rpc("transfer-in", "SeedPopulation"))?;
        first_index += count;
    }
    tracing::info!(seed, persons, "population seeded at both bureaus");
    Ok(())
}
