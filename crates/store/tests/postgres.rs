//! The shared store suite against PostgreSQL, plus what only a server brings: refused and
//! unreachable connections, and a pool that recovers when the server comes back.
//!
//! The server comes from `AUTHCHECK_TEST_POSTGRES_URL` (e.g.
//! `postgres://authcheck:authcheck@127.0.0.1:5432/authcheck_test`, a role allowed to create
//! schemas). Each test works in a schema of its own, so the tests run in parallel. Without the
//! variable (when the tests are built) every test here is ignored, and `cargo test` says why.

mod suite;

use std::net::SocketAddr;
use std::str::FromStr;

use authcheck_store::{Mailbox, SharedStore, StoreError, open};
use sqlx::postgres::PgConnectOptions;
use suite::{REJECTED_VERDICT, at, insert_one, sample};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const SERVER_VARIABLE: &str = "AUTHCHECK_TEST_POSTGRES_URL";

/// The server these tests use. They are built only when the variable was set at build time,
/// so its absence now is a mistake worth failing on, not a reason to pass.
fn server_url() -> String {
    std::env::var(SERVER_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            panic!("{SERVER_VARIABLE} was set when these tests were built but is not set now")
        })
}

/// `url` with extra query parameters, which override what the URL itself says.
fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// A schema of its own for one test, dropped by [`Schema::drop`] when the test is done.
struct Schema {
    admin: sqlx::PgPool,
    name: String,
    /// The server URL with this schema as the search path.
    url: String,
}

impl Schema {
    async fn create(server: &str) -> Schema {
        let admin = sqlx::PgPool::connect(server)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {SERVER_VARIABLE}: {error}"));
        let name = format!("authcheck_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let url = with_params(server, &format!("options[search_path]={name}"));
        Schema { admin, name, url }
    }

    async fn open(&self) -> SharedStore {
        match open(&self.url).await {
            Ok(store) => store,
            Err(error) => panic!("cannot open the store in schema {}: {error}", self.name),
        }
    }

    async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
        self.admin.close().await;
    }
}

macro_rules! on_a_fresh_store {
    ($($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)")]
            async fn $test() {
                let server = server_url();
                let schema = Schema::create(&server).await;
                suite::$test(schema.open().await).await;
                schema.drop().await;
            }
        )*
    };
}

suite::every_case!(on_a_fresh_store);

/// A database whose reports were stored under their domain as written (`Example.ORG.`): the
/// migration files them under the name their page looks up, merged with those stored so.
#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn report_domains_stored_as_written_are_merged_under_the_name_pages_look_up() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let direct = sqlx::PgPool::connect(&schema.url).await.unwrap();
    suite::migrate_before(&direct, "postgres", suite::DOMAIN_NAMES_MIGRATION).await;
    for statement in suite::reports_under_domains_as_written("'\\x00'::bytea") {
        sqlx::query(&statement).execute(&direct).await.unwrap();
    }
    direct.close().await;
    suite::report_domains_are_merged_under_their_names(&schema.open().await).await;
    schema.drop().await;
}

/// Makes the schema's database reject results with [`REJECTED_VERDICT`], as a server crash or
/// a full disk in the middle of a message would.
async fn reject_in(schema: &Schema) {
    let name = &schema.name;
    sqlx::query(&format!(
        "CREATE FUNCTION {name}.reject_for_test() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.verdict = '{REJECTED_VERDICT}' THEN RAISE EXCEPTION 'rejected by the test'; \
           END IF; \
           RETURN NEW; \
         END $$"
    ))
    .execute(&schema.admin)
    .await
    .unwrap();
    sqlx::query(&format!(
        "CREATE TRIGGER reject_for_test BEFORE INSERT ON {name}.results \
         FOR EACH ROW EXECUTE FUNCTION {name}.reject_for_test()"
    ))
    .execute(&schema.admin)
    .await
    .unwrap();
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn failed_insert_stores_none_of_the_message() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let store = schema.open().await;
    reject_in(&schema).await;
    suite::failed_insert_stores_none_of_the_message(store).await;
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn rejected_message_costs_concurrent_messages_nothing() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let store = schema.open().await;
    reject_in(&schema).await;
    suite::rejected_message_costs_concurrent_messages_nothing(store).await;
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn purge_deletes_the_raw_messages_no_result_keeps() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let store = schema.open().await;
    suite::purge_old_results_of_four_raw_messages(&store).await;
    let (left,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {}.messages", schema.name))
        .fetch_one(&schema.admin)
        .await
        .unwrap();
    assert_eq!(left, 1);
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn concurrent_purges_from_two_handles_agree() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let first = schema.open().await;
    let second = schema.open().await;
    suite::concurrent_purges_from_two_handles_agree(first, second).await;
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn concurrent_claims_take_each_message_once() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let (first, second) = (schema.open().await, schema.open().await);
    suite::concurrent_claims_take_each_message_once(first, second).await;
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn concurrent_decisions_keep_the_rate_limit() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let (first, second) = (schema.open().await, schema.open().await);
    suite::concurrent_decisions_keep_the_rate_limit(first, second).await;
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn instances_starting_together_share_one_schema() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let (first, second) = tokio::join!(open(&schema.url), open(&schema.url));
    let (first, second) = (first.unwrap(), second.unwrap());
    let id = insert_one(&first, sample(Mailbox::Spf, at(1))).await;
    assert!(second.get(&id).await.unwrap().is_some());
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn postgresql_scheme_is_accepted() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let url = schema.url.replacen("postgres://", "postgresql://", 1);
    assert!(url.starts_with("postgresql://"), "{url}");
    let store = open(&url).await.unwrap();
    store.ping().await.unwrap();
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn wrong_password_is_a_configuration_error() {
    let server = server_url();
    let outcome = open(&with_params(&server, "password=not-the-password")).await;
    assert!(
        matches!(&outcome, Err(StoreError::Config(message))
            if message.contains("check the user, password and database name")),
        "{:?}",
        outcome.err()
    );
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn missing_database_is_a_configuration_error() {
    let server = server_url();
    let outcome = open(&with_params(&server, "dbname=authcheck_no_such_database")).await;
    assert!(
        matches!(&outcome, Err(StoreError::Config(_))),
        "{:?}",
        outcome.err()
    );
}

/// A port on loopback that nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn unreachable_server_is_unavailable_at_open() {
    let server = server_url();
    let port = closed_port().await;
    let outcome = open(&with_params(
        &server,
        &format!("host=127.0.0.1&port={port}"),
    ))
    .await;
    match outcome {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(!message.contains("authcheck:authcheck"), "{message}");
        }
        other => panic!("{:?}", other.err()),
    }
}

/// A TCP relay on loopback in front of the PostgreSQL server, which the test can cut and
/// restore as if the server went away and came back.
struct Relay {
    address: SocketAddr,
    server: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(address: SocketAddr, server: SocketAddr) -> Relay {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Dropping the set when this task is aborted closes every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Relay {
            address,
            server,
            task,
        }
    }

    /// Closes the listening port and every connection through it.
    async fn cut(self) -> (SocketAddr, SocketAddr) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
        (self.address, self.server)
    }
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn lost_server_is_unavailable_until_it_returns() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let options = PgConnectOptions::from_str(&server).unwrap();
    let server_address = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start("127.0.0.1:0".parse().unwrap(), server_address).await;
    let relayed_url = with_params(
        &schema.url,
        &format!("host=127.0.0.1&port={}", relay.address.port()),
    );
    let store = open(&relayed_url).await.unwrap();
    let first = insert_one(&store, sample(Mailbox::Spf, at(1))).await;

    let (relay_address, server_address) = relay.cut().await;
    let outcome = store.insert(vec![sample(Mailbox::Spf, at(2))]).await;
    assert!(
        matches!(&outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));

    let _relay = Relay::start(relay_address, server_address).await;
    let second = insert_one(&store, sample(Mailbox::Spf, at(3))).await;
    let listed = store
        .list(&authcheck_store::ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|result| result.id.as_str()).collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    schema.drop().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn a_message_to_two_mailboxes_is_stored_once() {
    let server = server_url();
    let schema = Schema::create(&server).await;
    let store = schema.open().await;
    let mut spf = sample(Mailbox::Spf, at(1));
    spf.raw_message = vec![b'x'; 100_000].into();
    let mut dkim = sample(Mailbox::Dkim, at(1));
    dkim.raw_message = spf.raw_message.clone();
    store.insert(vec![spf, dkim]).await.unwrap();
    let (copies, bytes): (i64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), SUM(LENGTH(message))::BIGINT FROM {}.messages",
        schema.name
    ))
    .fetch_one(&schema.admin)
    .await
    .unwrap();
    assert_eq!((copies, bytes), (1, 100_000));
    store.close().await;
    schema.drop().await;
}
