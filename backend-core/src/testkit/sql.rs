//! What the SQL backends' (MySQL, PostgreSQL) own tests share: the test
//! server read from its URL, and the seed's raw rules run through an
//! [`Engine`] against the real server, checked with plain SQL that the
//! backend crate supplies (its placeholders and its driver).

use crate::testkit::OrPanic;
use std::future::Future;
use std::sync::Arc;

use super::unique;
use crate::backend::Backend;
use crate::config::{BackendKind, Config, DbDefaults, PoolConfig};
use crate::engine::Engine;
use crate::hook::{ClientInfo, MessageDelivery, SessionSubscribed, SessionUnsubscribed};
use crate::message::{Message, QoS};

/// An engine over `backend` with the seed's rules for the pubsub read
/// position (`on_message_fetch` on subscribe, `on_message_publish`,
/// `on_message_acked`) and its raw rule deleting the position on
/// unsubscribe, in `query_mode = sync` (each hook's writes are in the
/// database when it returns, and their errors come back). `extra` adds
/// `.conf` lines.
pub fn seed_engine(backend: Arc<dyn Backend>, kind: BackendKind, extra: &str) -> Engine {
    let k = kind.pool_prefix();
    let conf = Config::parse(&format!(
        r##"
backend.{k}.pool1.query_mode = sync
backend.{k}.hook.session.subscribed.1  = {{"topic": "#", "action": {{"function": "on_message_fetch"}}, "pool": "pool1"}}
backend.{k}.hook.session.unsubscribed.1= {{"topic": "#", "action": {{"sql": ["delete from mqtt_acked where clientid = ${{clientid}} and topic = ${{topic}}"]}}, "pool": "pool1"}}
backend.{k}.hook.message.publish.1     = {{"topic": "#", "action": {{"function": "on_message_publish"}}, "pool": "pool1"}}
backend.{k}.hook.message.acked.1       = {{"topic": "#", "action": {{"function": "on_message_acked"}}, "pool": "pool1"}}
{extra}
"##
    ))
    .or_panic("the seed's rules parse");
    Engine::with_backend(&conf, backend).or_panic("engine")
}

/// The seed's `delete from mqtt_acked` rule on unsubscribe resets the
/// pubsub read position: a later subscription is a first one again, so it
/// starts at that moment. `acked_rows` counts, with plain SQL, the
/// `mqtt_acked` rows of a client id and topic.
pub async fn the_seeds_delete_ack_rule_resets_the_read_position<F>(
    backend: Arc<dyn Backend>,
    kind: BackendKind,
    acked_rows: impl Fn(String, String) -> F,
) where
    F: Future<Output = i64>,
{
    let engine = seed_engine(backend, kind, "");
    let client = unique("unsub");
    let topic = unique("unsub-topic");
    let sub = SessionSubscribed {
        client: ClientInfo::new(client.as_str(), "node1"),
        filter: topic.clone(),
        qos: QoS::AtLeastOnce,
    };
    let subscribe = || async {
        let out = engine.on_session_subscribed(&sub).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out.output.offline
    };
    let publish = |payload: &'static str| {
        let m = Message::new("pub", topic.clone(), QoS::AtLeastOnce, payload);
        let engine = &engine;
        async move {
            let out = engine.on_message_publish(&m).await;
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            m
        }
    };
    let ids = |v: Vec<Message>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert!(
        subscribe().await.is_empty(),
        "the first subscription starts now"
    );
    let m1 = publish("m1").await;
    let m2 = publish("m2").await;
    assert_eq!(ids(subscribe().await), vec![m1.id.clone(), m2.id.clone()]);
    let out = engine
        .on_message_acked(&MessageDelivery::of(&m1, client.clone()))
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(ids(subscribe().await), vec![m2.id.clone()]);
    assert_eq!(
        acked_rows(client.clone(), topic.clone()).await,
        1,
        "one read position"
    );

    let out = engine
        .on_session_unsubscribed(&SessionUnsubscribed {
            client: ClientInfo::new(client.as_str(), "node1"),
            filter: topic.clone(),
        })
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        acked_rows(client.clone(), topic.clone()).await,
        0,
        "the raw rule deleted the position"
    );
    assert!(
        subscribe().await.is_empty(),
        "subscribing again is a first subscription: it starts now, m2 is not returned"
    );
    let m3 = publish("m3").await;
    assert_eq!(ids(subscribe().await), vec![m3.id]);
}

/// A SQL test server, read from a URL such as
/// `mysql://root:public@127.0.0.1:3306/mqtt` or
/// `postgres://root:public@127.0.0.1:5432/mqtt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlServer {
    /// The backend's port and user key (`backend_mysql::config::DEFAULTS`).
    pub defaults: DbDefaults,
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: String,
}

impl SqlServer {
    /// The server of `url` (`mysql://` or `mariadb://` for MySQL,
    /// `postgres://` or `postgresql://` for PostgreSQL; the port defaults
    /// to the server's own, query parameters are ignored), if it has that
    /// form.
    pub fn parse(defaults: DbDefaults, url: &str) -> Option<SqlServer> {
        let schemes: &[&str] = match defaults.kind.name() {
            "mysql" => &["mysql://", "mariadb://"],
            "pgsql" => &["postgres://", "postgresql://"],
            _ => return None,
        };
        let rest = schemes.iter().find_map(|s| url.strip_prefix(s))?;
        let (auth, rest) = rest.rsplit_once('@')?;
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, database) = rest.split_once('/')?;
        let database = database.split('?').next().unwrap_or(database);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (hostport, defaults.port),
        };
        Some(SqlServer {
            defaults,
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port,
            database: database.to_owned(),
        })
    }

    /// `host:port/database`, without credentials.
    pub fn label(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    /// A pool of this server (`create_tables = true`, 4 connections).
    pub fn pool(&self, name: &str) -> PoolConfig {
        self.pool_for(name, &self.database)
    }

    /// A pool of this server on another database.
    pub fn pool_for(&self, name: &str, database: &str) -> PoolConfig {
        let mut p = PoolConfig::new(self.defaults.kind, name);
        let port = self.port.to_string();
        let server = format!("{}:{port}", self.host);
        for (k, v) in [
            ("server", server.as_str()),
            (self.defaults.user_key, self.user.as_str()),
            ("password", self.password.as_str()),
            ("database", database),
            ("pool_size", "4"),
            ("create_tables", "true"),
        ] {
            p.set(k, v).or_panic(&format!("test pool setting {k}"));
        }
        p
    }

    /// A configuration with one pool of this server, `pool1`.
    pub fn config(&self) -> Config {
        Config::new(self.defaults.kind).with_pool(self.pool("pool1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MYSQL: DbDefaults = crate::db_defaults!(crate::testkit::kinds::MYSQL, 3306, "user");
    const PGSQL: DbDefaults = crate::db_defaults!(crate::testkit::kinds::PGSQL, 5432, "username");

    #[test]
    fn urls_are_read_with_their_defaults() {
        let s = SqlServer::parse(MYSQL, "mysql://root:pw@db:3307/mqtt?ssl=1").expect("a MySQL URL");
        assert_eq!((s.user.as_str(), s.password.as_str()), ("root", "pw"));
        assert_eq!((s.label(), s.defaults), ("db:3307/mqtt".to_owned(), MYSQL));
        let s = SqlServer::parse(PGSQL, "postgresql://u@h/d").expect("no port");
        assert_eq!((s.port, s.password.as_str()), (5432, ""));
        assert!(SqlServer::parse(PGSQL, "mysql://u@h/d").is_none());
        assert!(SqlServer::parse(MYSQL, "mysql://u@h:port/d").is_none());
        let redis = DbDefaults {
            kind: crate::testkit::kinds::REDIS,
            ..MYSQL
        };
        assert!(SqlServer::parse(redis, "redis://h").is_none());
        let p = s.pool_for("p", "other");
        assert_eq!(p.text("username"), Some("u"));
        assert_eq!(p.text("database"), Some("other"));
    }
}
