//! The behaviour contract: what every backend, the [`crate::Engine`] and a
//! broker's glue promise together. Documentation only; the conformance
//! suite (`testkit`, run by every backend crate against its real server)
//! and the end-to-end tests of the example broker check it.
//!
//! # Glossary
//!
//! - **The seed**: EMQX's design document for its data-storage backends
//!   (Redis, MySQL, PostgreSQL, MongoDB, Cassandra), which these crates
//!   implement: its `.conf` blocks (`etc/emqx_backend_<kind>.conf`), hook
//!   tables, schemas (`etc/sql/`) and examples. "The seed's" name, table or
//!   spelling means EMQX's own, kept so that existing files and queries
//!   work.
//! - **Pool**: one database connection pool, `backend.<kind>.<pool>.*`
//!   (`backend.ecql.` for Cassandra); a [`crate::Backend`] serves one.
//! - **Rule**: `backend.<kind>.hook.<hook>.<n> = {"topic": F, "action": A,
//!   "pool": P}`; `A` is a built-in `{"function": NAME}` or raw statements
//!   (`sql`, `commands`, `cql`).
//!
//! # Rules
//!
//! Rules of one hook run in the order of `<n>`. A rule without `topic`
//! applies to every event of its hook. For message hooks the rule's filter
//! is matched against the message topic; for session hooks against the
//! subscribed filter, taken as a name (`queue/+` matches the rule filter
//! `queue/#`). An error in one rule is logged, counted and reported; the
//! other rules still run. A template naming a variable its hook does not
//! have is a configuration error at load time.
//!
//! # Built-in functions
//!
//! - `on_client_connected` / `on_client_disconnected`: state 1 with
//!   `online_at` now, `offline_at` empty, the node; then state 0 with
//!   `offline_at` now.
//! - `on_subscribe_lookup` (also spelled `on_subscription_lookup`): the
//!   client's stored subscriptions, which the broker applies.
//! - `on_message_publish`: stores a QoS 1 or 2 message; QoS 0 is not
//!   stored, nor a retained message with an empty payload.
//! - `on_message_retain` / `on_retain_delete`: a retained message with a
//!   payload replaces its topic's; one with an empty payload deletes it.
//!   `on_retain_lookup`: every retained message whose topic matches the
//!   subscribed filter, wildcards included (`#` and `+` never match a
//!   first level starting with `$`).
//! - **Pubsub mode** (`on_message_fetch`, `on_message_acked`, the
//!   `_for_pubsub` names): a client's first subscription to a filter marks
//!   where it starts; later fetches for that client and filter return the
//!   stored messages on matching topics that came after that start and
//!   that the client has not acked, oldest first. Acking a message marks
//!   it and every earlier message on its topic read for that client only;
//!   an ack of an older message after a newer one marks nothing unread
//!   again. A reader never skips a message whose write was still in flight.
//! - **Queue mode** (`_for_queue` names): a fetch returns the stored
//!   messages on matching topics, oldest first; an ack deletes the message
//!   for everyone.
//! - Every backend offers both modes. Fetches happen only for
//!   subscriptions with QoS > 0.
//! - **Limits**: `max_returned_count` keeps the newest N, returned oldest
//!   first; `time_range` drops messages that arrived longer ago, and the
//!   sweeper removes them ([`crate::sweep`]). Redis also expires messages
//!   after `msg.expired_after` seconds.
//! - Message order is store order: a per-topic sequence, never a constant
//!   score.
//! - A message stored again with the same id is kept once, with the later
//!   content: twice in one batch, or in a later call marked
//!   [`crate::backend::WriteOptions::again`], which the write path sets on
//!   its retries and on the disk buffer's replay after a crash (both may
//!   store some messages again).
//!
//! # Writes
//!
//! See [`crate::write`]: writes are batched per pool (group commit), keep
//! their order per topic, and with `query_mode = async` (the default) a
//! hook returns once its write is in the pool's buffer. Every read first
//! waits for the buffered writes it depends on (its topic's; for the
//! subscription lookup, its client's statements), not for the rest of the
//! buffer. A full buffer makes a publishing hook wait; a client's connect
//! and disconnect writes have room of their own, so a CONNACK does not
//! wait for a backlog of messages. Dropping is opt-in and counted. [`crate::Engine::flush`]
//! drains the buffers on shutdown.
//!
//! # Delivery through a broker
//!
//! The backend is one of two places a message can wait for a client; the
//! broker's own session is the other. Together they deliver as MQTT
//! promises. [`crate::delivery::Delivery`], the adapter a broker's hooks
//! call, does the work; the broker's glue only maps its types and hands
//! the session what the adapter returns.
//!
//! - **A backlog of any size arrives whole and once.** A stored
//!   backlog is read oldest first, page by page
//!   ([`crate::FetchRequest::page`]), and handed to the session as the
//!   client acknowledges: never more than
//!   [`crate::delivery::DeliveryConfig::window`] (500) stored messages
//!   unacknowledged at once, below what a session holds (rmqtt, mosquitto
//!   and EMQX queue 1,000 and drop beyond), so a backlog of 100,000 comes
//!   through. Each ack goes to the backend before the next page is read,
//!   so a page never repeats what was acked; a message the session
//!   dropped (its queue was full) is handed again. With
//!   `max_returned_count` set, a subscribe gets the newest N, as the seed
//!   says, all handed over as the window allows.
//! - **Storage is the one source of a stored backlog.** While a
//!   subscription's backlog is paged in, the broker's own copies of stored
//!   messages on its topics (live ones, and those its session queued
//!   while the client was away, which a bounded queue may have cut) are
//!   held back ([`crate::delivery::Delivery::live_copy`]); the pages bring
//!   them, in store order. A persistent session that comes back without
//!   subscribing again has its subscriptions' backlogs paged in too
//!   ([`crate::delivery::Delivery::resume`]).
//! - **At most once per subscription.** A stored message reaches a
//!   subscription at most once, whichever of the two holds it; QoS 1/2 on
//!   a persistent session reach it exactly once: an acked message never
//!   comes again, across reconnects and broker restarts.
//!   [`crate::delivery::DeliveryTracker`] remembers per session the stored
//!   messages handed over and not yet acked (a page skips them) and those
//!   the fetch handed over (a live copy arriving later, the
//!   subscribe-and-publish race, is held back). A retransmission (DUP) of
//!   the session's own in-flight message is never held back. A message
//!   delivered at QoS 1 whose PUBACK never reached the broker comes again,
//!   as MQTT requires.
//! - **MQTT 5 properties travel with a stored message**
//!   ([`crate::Properties`]): payload format, content type, response
//!   topic, correlation data and user properties come back as published;
//!   the message expiry interval is sent as what is left of it
//!   [MQTT-3.3.2-6], and a stored message whose expiry has passed is never
//!   delivered [MQTT-3.3.2-5] (it is acknowledged for the client, so it
//!   leaves the backlog). Retained messages keep theirs too.
//! - **Nothing MQTT kept from a client comes later from storage.**
//!   [`crate::engine::Subscribed::to_deliver`] applies MQTT 5 No Local (the
//!   client's own messages), retain handling 2 (no retained messages on
//!   that subscribe), and sends a message that is both retained and stored
//!   once, as retained. An unsubscribed filter is never fetched.
//! - **Pubsub history.** In pubsub mode a client's first subscription to a
//!   filter marks where it starts; when it subscribes again (a new
//!   session, or another connection with the same id), it gets the
//!   filter's stored messages since that start that it has not acked: the
//!   seed's behaviour, kept. Test suites that reuse topics across tests
//!   see each other's messages unless each test has its own topics.
//! - **Quick reconnects work as without storage.** The disconnect hook
//!   does not wait for the database
//!   ([`crate::Engine::detach_client_disconnected`]); the client's writes
//!   stay in order with its next connect.
//! - **Clean start and session expiry.** Stored offline messages belong to
//!   the subscription, not to the broker's session: a client that
//!   reconnects with clean start (or whose session expired) and subscribes
//!   again gets, in pubsub mode, what arrived since its read position and
//!   was not acked, and in queue mode what nobody acked. Clean start
//!   clears the broker's session and the adapter's memory of it, not the
//!   stored read position: that is what lets a client that lost its
//!   session still get what it missed. A client that wants a fresh start
//!   in storage unsubscribes (the seed's `session.unsubscribed` statements
//!   delete its read position).
//! - **Retain handling and retain-as-published.** Stored retained messages
//!   follow MQTT 5 retain handling: 0 sends them on every SUBSCRIBE, 1 only
//!   when the subscription is new (the glue tells the adapter with
//!   [`crate::delivery::Delivery::before_subscribe`]), 2 never. They go out
//!   with the retain flag set, as MQTT requires for retained messages sent
//!   because of a SUBSCRIBE; retain-as-published concerns live forwarding,
//!   which is the broker's. A broker whose storage keeps retained messages
//!   advertises Retain Available ([`crate::Engine::keeps_retained`]).
