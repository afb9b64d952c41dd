//! Hostile values through the built-in functions and raw statements.

use super::*;
use crate::testkit::OrPanic;

/// Values that break naive string building, stored and read back byte for
/// byte by the built-in functions.
fn hostile_strings() -> Vec<String> {
    vec![
        "'); DROP TABLE mqtt_msg; --".into(),
        "quote ' and \" and \\ backslash".into(),
        "spaces  and\r\nCRLF\tand tab".into(),
        "emoji 🦀 and 雨".into(),
        "${clientid} %s %n {}".into(),
    ]
}

fn hostile_payloads() -> Vec<Bytes> {
    let mut big = vec![0u8; 1 << 20];
    for (i, byte) in big.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    vec![
        Bytes::from_static(b"\x00\xff\xfe not utf-8 \x80\x00"),
        Bytes::from_static(b"'); DROP TABLE mqtt_msg; --"),
        Bytes::from(big),
    ]
}

/// Hostile topics, client ids and payloads through the built-in functions.
pub async fn hostile_values_in_builtins(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("hostile");
    let mut stored = Vec::new();
    for (i, s) in hostile_strings().into_iter().enumerate() {
        let topic = format!("{root}/{i}/{s}");
        for p in hostile_payloads() {
            stored.push(msg(&format!("{s}-{i}"), &topic, QoS::AtLeastOnce, p));
        }
    }
    store(b, &stored).await;
    let got = fetch(b, "h", &format!("{root}/#"), OfflineMode::Queue).await;
    assert_same(&got, &stored.iter().collect::<Vec<_>>(), "hostile messages");
    for s in hostile_strings() {
        let client = format!("{root}-{s}");
        let sub = Subscription::new(format!("{root}/{s}"), QoS::AtLeastOnce);
        b.store_subscriptions(&client, std::slice::from_ref(&sub))
            .await
            .or_panic("store_subscriptions");
        assert_eq!(
            b.lookup_subscriptions(&client).await.ok(),
            Some(vec![sub]),
            "subscription of {s:?}"
        );
        let info = ClientInfo::new(client.clone(), s.clone());
        b.client_online(&info, Timestamp::now())
            .await
            .or_panic("client_online");
        let status = b.client_status(&client).await.ok().flatten();
        assert_eq!(status.map(|st| st.node), Some(s.clone()), "node {s:?}");
    }
    let retained: Vec<Message> = hostile_payloads()
        .into_iter()
        .enumerate()
        .map(|(i, p)| msg("h", &format!("{root}/r/{i} '\"\\"), QoS::AtLeastOnce, p).retained(true))
        .collect();
    b.store_retained(&retained, Default::default())
        .await
        .or_panic("store_retained");
    let mut got = b
        .lookup_retained(&format!("{root}/r/+"))
        .await
        .or_panic("lookup_retained");
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_same(
        &got,
        &retained.iter().collect::<Vec<_>>(),
        "hostile retained messages",
    );
}

/// Raw statements whose bound values are hostile: stored and read back byte
/// for byte, and the statement's structure untouched. For a kind without raw
/// statements ([`crate::testkit::RawFixture::none`]): `execute` returns an
/// `Unsupported` error, which is all this scenario checks then.
pub async fn hostile_values_in_raw_statements(ctx: Ctx) {
    let b = &*ctx.backend;
    if !b.capabilities().raw_statements {
        // A backend without raw statements (MongoDB): nothing to render,
        // so check instead that `execute` refuses.
        assert!(
            ctx.raw.write.is_empty() && ctx.raw.read.is_empty(),
            "{} runs no raw statements, yet the fixture has some",
            b.name()
        );
        for statement in [
            Statement::Query {
                text: "select 1".into(),
                params: vec![Value::from("x")],
            },
            Statement::Command {
                args: vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
            },
        ] {
            match b.execute(&statement).await {
                Err(e) => assert_eq!(
                    e.kind(),
                    ErrorKind::Unsupported,
                    "{} execute: want an Unsupported error, got {e}",
                    ctx.raw.kind
                ),
                Ok(rows) => panic!(
                    "{} has no raw statements, yet execute returned {} rows",
                    ctx.raw.kind,
                    rows.len()
                ),
            }
        }
        return;
    }
    assert!(
        !ctx.raw.read.is_empty(),
        "{} runs raw statements: give conformance_tests! a RawFixture in its language",
        b.name()
    );
    let Some(lang) = ctx.raw.kind.statements() else {
        panic!(
            "{} runs raw statements, but the fixture's kind {} has none: give \
             conformance_tests! a RawFixture in its language",
            b.name(),
            ctx.raw.kind
        );
    };
    let compile = |text: &str| {
        let t = Template::parse(text, Hook::MessagePublish).or_panic(&format!("fixture `{text}`"));
        lang.compile(&t).or_panic(&format!("fixture `{text}`"))
    };
    let writes: Vec<_> = ctx.raw.write.iter().map(|w| compile(w)).collect();
    let read = compile(&ctx.raw.read);
    let root = unique("raw");
    for (i, s) in hostile_strings().into_iter().enumerate() {
        for p in hostile_payloads() {
            let mut m = msg(
                &format!("{s}-{i}"),
                &format!("{root}/{s}"),
                QoS::AtLeastOnce,
                p,
            );
            m.username = Some(format!("user {s}"));
            let ev = Event::Publish(&m);
            for w in &writes {
                b.execute(&w.render(&ev))
                    .await
                    .or_panic(&format!("raw write with {s:?}"));
            }
            let rows = b.execute(&read.render(&ev)).await.or_panic("raw read");
            assert_eq!(rows.len(), 1, "one row back for {s:?}");
            let row = &rows[0];
            let want = [
                Value::from(m.sender.as_str()),
                Value::from(m.topic.as_str()),
                Value::from(m.username.as_deref()),
                Value::Bytes(m.payload.clone()),
            ];
            assert_eq!(row.len(), want.len(), "columns for {s:?}");
            for (g, w) in row.iter().zip(&want) {
                assert!(
                    g.to_bytes() == w.to_bytes(),
                    "raw value for {s:?} changed: {} vs {} bytes",
                    g.to_bytes().len(),
                    w.to_bytes().len()
                );
            }
        }
    }
}
