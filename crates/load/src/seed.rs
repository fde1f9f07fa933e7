//! Seeding: `SeedPopulation` with the same seed and range on both bureaus (or the one a run
//! drives), in chunks so the progress bar moves and no single call runs for minutes. Each bureau
//! materialises its own view; the two sides of a chunk are seeded at the same time.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;
use tokio::time::Instant;
use yibao_harness::AdminClient;
use yibao_proto::admin::v1::SeedPopulationRequest;

use crate::error::LoadError;

/// People per `SeedPopulation` call.
pub const CHUNK: u64 = 20_000;
/// The deadline of one call (`grpc-timeout`).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// What seeding did.
#[derive(Clone, Debug, Serialize)]
pub struct Seeding {
    /// The first index seeded.
    pub first_person: u64,
    /// How many consecutive people.
    pub persons: u64,
    /// People each bureau wrote (the rest were already present).
    pub written_out: u64,
    /// As `written_out`, at the transfer-in bureau.
    pub written_in: u64,
    /// How long it took.
    pub seconds: f64,
    /// People seeded during the transfer phase to keep ahead of it (a person transfers once).
    pub topped_up: u64,
    /// In a run over a topology: people each bureau wrote, by bureau name (each keeps the
    /// people of the regions it hosts); `written_out` and `written_in` are 0 then.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub written_by_bureau: BTreeMap<String, u64>,
}

/// A bureau of a topology to seed: its name, admin client and endpoint.
#[derive(Clone, Debug)]
pub struct Named {
    /// Its name in the region directory.
    pub name: String,
    /// Its admin client.
    pub admin: AdminClient,
    /// Its endpoint, for errors.
    pub endpoint: String,
}

/// Seeds `persons` people from `first` at every bureau of a topology, each chunk at all of
/// them at the same time.
pub async fn seed_named(
    bureaus: &[Named],
    seed: u64,
    first: u64,
    persons: u64,
    bar: &ProgressBar,
) -> Result<Seeding, LoadError> {
    let start = Instant::now();
    let mut written: BTreeMap<String, u64> = bureaus.iter().map(|b| (b.name.clone(), 0)).collect();
    let mut done = 0;
    bar.set_length(persons);
    while done < persons {
        let count = CHUNK.min(persons - done);
        let request = SeedPopulationRequest {
            seed,
            first_index: first + done,
            count,
        };
        let mut calls = tokio::task::JoinSet::new();
        for bureau in bureaus.iter().cloned() {
            calls.spawn(async move {
                let wrote = call(Some((bureau.admin, &bureau.endpoint)), request).await;
                (bureau.name, wrote)
            });
        }
        while let Some(joined) = calls.join_next().await {
            let (name, wrote) =
                joined.map_err(|error| LoadError::Spawn(format!("seeding: {error}")))?;
            *written.entry(name).or_default() += wrote?;
        }
        done += count;
        bar.set_position(done);
    }
    Ok(Seeding {
        first_person: first,
        persons,
        written_out: 0,
        written_in: 0,
        seconds: start.elapsed().as_secs_f64(),
        topped_up: 0,
        written_by_bureau: written,
    })
}

/// A bureau to seed: its admin client and endpoint (for errors).
pub type Bureau<'a> = (AdminClient, &'a str);

/// Seeds `persons` people from `first` at both bureaus, or the one given.
pub async fn seed(
    out: Option<Bureau<'_>>,
    inn: Option<Bureau<'_>>,
    seed: u64,
    first: u64,
    persons: u64,
    bar: &ProgressBar,
) -> Result<Seeding, LoadError> {
    let start = Instant::now();
    let mut written = (0, 0);
    let mut done = 0;
    bar.set_length(persons);
    while done < persons {
        let count = CHUNK.min(persons - done);
        let request = SeedPopulationRequest {
            seed,
            first_index: first + done,
            count,
        };
        let (out_written, in_written) =
            tokio::try_join!(call(out.clone(), request), call(inn.clone(), request))?;

        written.0 += out_written;
        written.1 += in_written;
        done += count;
        bar.set_position(done);
    }
    Ok(Seeding {
        first_person: first,
        persons,
        written_out: written.0,
        written_in: written.1,
        seconds: start.elapsed().as_secs_f64(),
        topped_up: 0,
        written_by_bureau: BTreeMap::new(),
    })
}

/// One chunk at one bureau, if there is one; how many people it wrote.
async fn call(
    bureau: Option<Bureau<'_>>,
    request: SeedPopulationRequest,
) -> Result<u64, LoadError> {
    let Some((mut client, endpoint)) = bureau else {
        return Ok(0);
    };
    let mut call = tonic::Request::new(request);
    call.set_timeout(CALL_TIMEOUT);
    let answer = client
        .seed_population(call)
        .await
        .map_err(|status| LoadError::call("SeedPopulation", endpoint, status))?;
    Ok(answer.into_inner().persons_written)
}
