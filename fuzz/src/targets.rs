//! The targets: one per parser that reads outside input.

use std::sync::Arc;

use backend_core::config::ServerAddr;
use backend_core::engine::Pools;
use backend_core::template::{Placeholders, Template};
use backend_core::topic::{self, FilterTrie};
use backend_core::{
    Backend, ClientConnected, ClientDisconnected, ClientInfo, Config, Engine, Event, Hook,
    MemoryBackend, Message, MessageDelivery, QoS, SessionSubscribed, SessionUnsubscribed,
    Timestamp,
};

use crate::Target;

// Linked for its kind alone (no parser of its own): the conf target reads
// `backend.sqlite.` keys as a broker with the crate does.
use backend_sqlite as _;

/// Every target, in the order `all` runs them.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "conf",
            about: "Config::parse on EMQX .conf text, then Engine::new on what parses",
            seeds: conf_seeds,
            dict: CONF_DICT,
            max_len: 4096,
            run: conf,
        },
        Target {
            name: "template",
            about: "Template::parse for every hook, to SQL ($n and ?) and Redis commands, rendered",
            seeds: template_seeds,
            dict: TEMPLATE_DICT,
            max_len: 512,
            run: template,
        },
        Target {
            name: "topic",
            about: "topic name/filter validation, matches, literal prefix and its upper bound; the trie agrees with matches",
            seeds: topic_seeds,
            dict: TOPIC_DICT,
            max_len: 256,
            run: topic_target,
        },
        Target {
            name: "server",
            about: "ServerAddr::parse and parse_list (host, host:port, [v6]:port, socket paths, lists)",
            seeds: server_seeds,
            dict: SERVER_DICT,
            max_len: 256,
            run: server,
        },
        Target {
            name: "redis-channel",
            about: "the Redis SUB/UNSUB channel message parser",
            seeds: backend_redis::fuzzing::channel_seeds,
            dict: backend_redis::fuzzing::CHANNEL_DICT,
            max_len: 512,
            run: backend_redis::fuzzing::channel_message,
        },
        Target {
            name: "redis-hash",
            about: "a message hash (mqtt:msg:<id>) another tool wrote, decoded",
            seeds: backend_redis::fuzzing::hash_seeds,
            dict: backend_redis::fuzzing::HASH_DICT,
            max_len: 512,
            run: backend_redis::fuzzing::message_hash,
        },
        Target {
            name: "redis-reply",
            about: "a RESP reply to a raw command, flattened into a row",
            seeds: backend_redis::fuzzing::reply_seeds,
            dict: backend_redis::fuzzing::REPLY_DICT,
            max_len: 512,
            run: backend_redis::fuzzing::reply,
        },
        Target {
            name: "pgsql-column",
            about: "a PostgreSQL column of any type read back as a Value; a Value bound to any column type",
            seeds: backend_pgsql::fuzzing::seeds,
            dict: &[],
            max_len: 256,
            run: backend_pgsql::fuzzing::column,
        },
        Target {
            name: "mysql-row",
            about: "a MySQL message row of any value types decoded; columns read; Values bound",
            seeds: backend_mysql::fuzzing::seeds,
            dict: &[],
            max_len: 256,
            run: backend_mysql::fuzzing::row,
        },
        Target {
            name: "cassa-row",
            about: "a Cassandra column of any type read back as a Value; a msg row another tool wrote decoded; a Value bound to any marker type",
            seeds: backend_cassa::fuzzing::seeds,
            dict: &[],
            max_len: 256,
            run: backend_cassa::fuzzing::column,
        },
        Target {
            name: "mongo-document",
            about: "a BSON document another tool wrote, decoded as a message",
            seeds: backend_mongo::fuzzing::document_seeds,
            dict: &[],
            max_len: 1024,
            run: backend_mongo::fuzzing::document,
        },
        Target {
            name: "mongo-payload",
            about: "an MQTT payload encoded for MongoDB (mongo_json, plain_text) decodes to the same bytes",
            seeds: backend_mongo::fuzzing::payload_seeds,
            dict: backend_mongo::fuzzing::PAYLOAD_DICT,
            max_len: 1024,
            run: backend_mongo::fuzzing::payload,
        },
    ]
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

const CONF_DICT: &[&[u8]] = &[
    b"\n",
    b" = ",
    b"=",
    b"backend.",
    b"redis",
    b"mysql",
    b"pgsql",
    b"mongo",
    b"cassa",
    b"ecql",
    b".pool1.",
    b".hook.",
    b"client.connected",
    b"client.disconnected",
    b"session.subscribed",
    b"session.unsubscribed",
    b"message.publish",
    b"message.acked",
    b"message.delivered",
    b"{\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}",
    b"\"action\"",
    b"\"function\"",
    b"\"sql\"",
    b"\"commands\"",
    b"\"cql\"",
    b"\"pool\"",
    b"\"topic\"",
    b"\"offline_opts\"",
    b"\"max_returned_count\"",
    b"\"time_range\"",
    b"\"payload_format\"",
    b"on_message_fetch",
    b"on_retain_lookup",
    b"on_subscribe_lookup",
    b"on_message_acked",
    b"${clientid}",
    b"${topic}",
    b"${payload}",
    b"${",
    b"}",
    b"{",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"server",
    b"pool_size",
    b"database",
    b"password",
    b"ssl",
    b"cacertfile",
    b"nodes",
    b"time_range",
    b"max_returned_count",
    b"msg.expired_after",
    b"infinity",
    b"2h",
    b"30m",
    b"topology.",
    b"#",
    b"##",
    b"127.0.0.1:6379",
    b"[::1]:5432",
    b"/tmp/mysql.sock",
    b"true",
];

const TEMPLATE_DICT: &[&[u8]] = &[
    b"${",
    b"}",
    b"${clientid}",
    b"${topic}",
    b"${payload}",
    b"${message}",
    b"${msgid}",
    b"${qos}",
    b"${node}",
    b"${ username }",
    b"'",
    b"\"",
    b"$",
    b"?",
    b"$1",
    b" ",
    b"  ",
    b"insert into t values(",
    b")",
    b"HMSET mqtt:msg:",
    b"\r\n",
    b"\x00",
];

const TOPIC_DICT: &[&[u8]] = &[
    b"/",
    b"+",
    b"#",
    b"$SYS",
    b"$share/",
    b"$share/g/",
    b"$queue/",
    b"\x00",
    b"//",
    b"a",
    b"\xff",
    b"\xc3\xa9",
];

const SERVER_DICT: &[&[u8]] = &[
    b":",
    b",",
    b"[",
    b"]",
    b"::1",
    b"127.0.0.1",
    b"localhost",
    b"/",
    b".sock",
    b" ",
    b"65535",
    b"65536",
    b"0",
    b"%eth0",
];

fn conf_seeds() -> Vec<Vec<u8>> {
    [
        include_str!("../../etc/emqx_backend_redis.conf"),
        include_str!("../../etc/emqx_backend_mysql.conf"),
        include_str!("../../etc/emqx_backend_pgsql.conf"),
        include_str!("../../etc/emqx_backend_mongo.conf"),
        include_str!("../../etc/emqx_backend_cassa.conf"),
        include_str!("../../etc/emqx_backend_sqlite.conf"),
        include_str!("../../backend-core/tests/seed/redis.conf"),
        include_str!("../../backend-core/tests/seed/mysql.conf"),
        include_str!("../../backend-core/tests/seed/pgsql.conf"),
        include_str!("../../backend-core/tests/seed/mongo.conf"),
        include_str!("../../backend-core/tests/seed/cassa.conf"),
    ]
    .iter()
    .map(|s| strip_comments(s).into_bytes())
    .collect()
}

/// Comment lines are skipped by the parser; mutating them is wasted work,
/// and the inputs stay short.
fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses; what parses runs through `Engine::new` on in-memory pools of
/// the names it uses (that compiles every template and filter).
fn conf(data: &[u8]) {
    let Ok(config) = Config::parse(&text(data)) else {
        return;
    };
    // `buffer = disk` would have the engine create a file where the input
    // says: that is I/O, not parsing, and is left out.
    if config
        .pools()
        .values()
        .any(|p| p.text("buffer") == Some("disk"))
    {
        return;
    }
    let mut pools = Pools::new();
    for name in config.pools().keys() {
        pools.insert(
            name.clone(),
            Arc::new(MemoryBackend::new()) as Arc<dyn Backend>,
        );
    }
    for rule in config.rules() {
        pools
            .entry(rule.pool.clone())
            .or_insert_with(|| Arc::new(MemoryBackend::new()) as Arc<dyn Backend>);
    }
    let _ = Engine::new(&config, &pools);
}

fn template_seeds() -> Vec<Vec<u8>> {
    [
        "\0insert into mqtt_conn(clientid, node) values(${clientid}, '${node}')",
        "\x04insert into msg(topic, payload) values('${topic}', ${payload})",
        "\x04HMSET mqtt:msg:${msgid} ${message}",
        "\x04ZADD mqtt:msg:${topic} ${timestamp} ${msgid}",
        "\x02DEL mqtt:acked:${clientid}:${topic}",
        "\x05update msg set acked = 1 where msgid = ${msgid} and clientid = '${clientid}'",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// The first byte picks the hook; the rest is the template.
fn template(data: &[u8]) {
    let Some((&h, rest)) = data.split_first() else {
        return;
    };
    let hook = Hook::ALL[usize::from(h) % Hook::ALL.len()];
    let Ok(t) = Template::parse(&text(rest), hook) else {
        return;
    };
    // Values with quotes, spaces, CR/LF and NUL, in every field.
    let nasty = "c\0 '\"\r\n1";
    let client = ClientInfo::new(nasty, nasty);
    let message = Message::new(nasty, "a/b c", QoS::AtLeastOnce, "p \r\n\0 ' \"");
    let connected = ClientConnected {
        client: client.clone(),
        timestamp: Timestamp::now(),
    };
    let disconnected = ClientDisconnected {
        client: client.clone(),
        reason: nasty.into(),
        timestamp: Timestamp::now(),
    };
    let subscribed = SessionSubscribed {
        client: ClientInfo {
            username: Some(nasty.into()),
            peer_host: Some(nasty.into()),
            ..client.clone()
        },
        filter: "a/+".into(),
        qos: QoS::ExactlyOnce,
    };
    let unsubscribed = SessionUnsubscribed {
        client: client.clone(),
        filter: "a/#".into(),
    };
    let delivery = MessageDelivery::of(&message, nasty);
    let event = match hook {
        Hook::ClientConnected => Event::Connected(&connected),
        Hook::ClientDisconnected => Event::Disconnected(&disconnected),
        Hook::SessionSubscribed => Event::Subscribed(&subscribed),
        Hook::SessionUnsubscribed => Event::Unsubscribed(&unsubscribed),
        Hook::MessagePublish => Event::Publish(&message),
        Hook::MessageAcked => Event::Acked(&delivery),
        Hook::MessageDelivered => Event::Delivered(&delivery),
    };
    for style in [Placeholders::Question, Placeholders::Numbered] {
        if let Ok(q) = t.to_query(style) {
            let marks = match style {
                Placeholders::Question => q.text().matches('?').count(),
                Placeholders::Numbered => q.params().len(),
            };
            assert!(
                marks >= q.params().len(),
                "fewer placeholders than parameters in {:?}",
                q.text()
            );
            let _ = q.render(&event);
        }
    }
    if let Ok(c) = t.to_command() {
        let _ = c.render(&event);
    }
}

fn topic_seeds() -> Vec<Vec<u8>> {
    [
        "sensors/+/temp\0sensors/1/temp",
        "#\0$SYS/broker",
        "a/#\0a",
        "+/+\0/x",
        "$share/g/a/+\0a/b",
        "a/b/c\0a/b/c",
        "+\0",
        "/#\0//",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// `filter\0name`: every function on both; where both are valid, the trie
/// and `matches` must agree, and a matching name must fall in the filter's
/// literal-prefix range.
fn topic_target(data: &[u8]) {
    let s = text(data);
    let (filter, name) = s.split_once('\0').unwrap_or((&s, ""));
    let filter_ok = topic::validate_filter(filter).is_ok();
    let name_ok = topic::validate_name(name).is_ok();
    let _ = topic::has_wildcards(filter);
    let stripped = topic::strip_shared(filter);
    let prefix = topic::literal_prefix(stripped);
    let upper = topic::prefix_upper_bound(prefix);
    let m = topic::matches(filter, name);
    if filter_ok && name_ok {
        let mut trie = FilterTrie::new();
        if trie.insert(filter, ()).is_ok() {
            assert_eq!(
                trie.matching(name).len() == 1,
                m,
                "trie and matches disagree on {filter:?} {name:?}"
            );
        }
        if m && topic::matches(stripped, name) {
            assert!(
                name.starts_with(prefix),
                "{name:?} matches {filter:?} outside prefix {prefix:?}"
            );
            if let Some(u) = upper {
                assert!(
                    name < u.as_str(),
                    "{name:?} matches {filter:?} above bound {u:?}"
                );
            }
        }
    }
}

fn server_seeds() -> Vec<Vec<u8>> {
    [
        "127.0.0.1:6379",
        "localhost",
        "[::1]:5432",
        "/var/run/mysqld/mysqld.sock",
        "10.0.0.1:9042,10.0.0.2:9042, 10.0.0.3",
        "db.example:27017",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn server(data: &[u8]) {
    let s = text(data);
    if let Ok(a) = ServerAddr::parse(&s, 1883) {
        let _ = a.is_socket();
        let _ = format!("{a:?}");
    }
    let _ = ServerAddr::parse_list(&s, 1883);
}
