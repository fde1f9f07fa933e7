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
    for request in requests(seed, persons) {
        let (out, inn) = tokio::join!(
            admin_out.seed_population(request),
            admin_in.seed_population(request),
        );
        out.map_err(HarnessError::rpc("transfer-out", "SeedPopulation"))?;
        inn.map_err(HarnessError::rpc("transfer-in", "SeedPopulation"))?;
    }
    tracing::info!(seed, persons, "population seeded at both bureaus");
    Ok(())
}

/// Seeds persons `0..persons` of population `seed` into one bureau (`service`), in calls of at
/// most [`MAX_SEED_PER_CALL`]: a bureau whose peer is not yibao's, which seeds its own people.
pub async fn seed_one(
    service: &'static str,
    admin: &mut AdminClient,
    seed: u64,
    persons: u64,
) -> Result<(), HarnessError> {
    for request in requests(seed, persons) {
        admin
            .seed_population(request)
            .await
            .map_err(HarnessError::rpc(service, "SeedPopulation"))?;
    }
    tracing::info!(seed, persons, service, "population seeded");
    Ok(())
}

/// The calls that seed persons `0..persons`.
fn requests(seed: u64, persons: u64) -> impl Iterator<Item = SeedPopulationRequest> {
    (0..persons)
        .step_by(usize::try_from(MAX_SEED_PER_CALL).unwrap_or(usize::MAX))
        .map(move |first_index| SeedPopulationRequest {
            seed,
            first_index,
            count: (persons - first_index).min(MAX_SEED_PER_CALL),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_is_split_into_calls_of_at_most_the_limit() {
        let calls: Vec<(u64, u64)> = requests(1, MAX_SEED_PER_CALL * 2 + 5)
            .map(|request| (request.first_index, request.count))
            .collect();
        assert_eq!(
            calls,
            [
                (0, MAX_SEED_PER_CALL),
                (MAX_SEED_PER_CALL, MAX_SEED_PER_CALL),
                (MAX_SEED_PER_CALL * 2, 5)
            ]
        );
        assert_eq!(requests(1, 0).count(), 0);
    }
}
