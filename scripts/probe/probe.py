"""Readiness checks and setup for scripts/services.sh.

Usage:
  probe.py cassandra HOST PORT USER PASSWORD [CQL ...]
      Log in, run SELECT release_version FROM system.local, then each CQL
      statement given. Prints the release version. Exit 1 if not ready.
  probe.py cassandra-peers HOST PORT USER PASSWORD
      Prints how many peers the node knows (rows of system.peers_v2).
  probe.py cassandra-keyspace HOST PORT USER PASSWORD KEYSPACE
      Uses KEYSPACE on that node alone (its own view of the schema, which
      after a restart can lack what the other nodes have).
  probe.py cassandra-tls HOST PORT USER PASSWORD CA_FILE
      The same login and query over TLS, verifying the server's certificate
      (chain and host name) against CA_FILE.
  probe.py mongo URI [CA_FILE [CLIENT_PEM]]
      ping, then insert, read back and delete one document in the database
      services_probe. Prints the server's version. Exit 1 if not ready.
      With CA_FILE the connection uses TLS and verifies the server's
      certificate (chain and host name) against CA_FILE; CLIENT_PEM is a client
      certificate and its key in one PEM file.

Each call makes one attempt with short timeouts; services.sh loops.
"""

import logging
import sys
import uuid


def cassandra(host, port, user, password, *statements, ssl_context=None):
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    cluster = Cluster(
        [host],
        port=int(port),
        auth_provider=PlainTextAuthProvider(username=user, password=password),
        connect_timeout=5,
        control_connection_timeout=5,
        ssl_context=ssl_context,
        ssl_options={"server_hostname": host} if ssl_context else None,
    )
    try:
        session = cluster.connect()
        session.default_timeout = 30
        row = session.execute("SELECT release_version FROM system.local").one()
        for stmt in statements:
            session.execute(stmt, timeout=60)
        print(row.release_version)
    finally:
        cluster.shutdown()


def pinned(host, port, user, password):
    """A cluster object that sends every request to `host` alone."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster
    from cassandra.policies import WhiteListRoundRobinPolicy

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    return Cluster(
        [host],
        port=int(port),
        auth_provider=PlainTextAuthProvider(username=user, password=password),
        connect_timeout=5,
        control_connection_timeout=5,
        load_balancing_policy=WhiteListRoundRobinPolicy([host]),
    )


def cassandra_peers(host, port, user, password):
    cluster = pinned(host, port, user, password)
    try:
        session = cluster.connect()
        rows = session.execute("SELECT peer FROM system.peers_v2").all()
        print(len(rows))
    finally:
        cluster.shutdown()


def cassandra_keyspace(host, port, user, password, keyspace):
    cluster = pinned(host, port, user, password)
    try:
        cluster.connect(keyspace)
        print(keyspace)
    finally:
        cluster.shutdown()


def mongo(uri, ca_file=None, client_pem=None):
    from pymongo import MongoClient

    tls = {}
    if ca_file:
        tls = {"tls": True, "tlsCAFile": ca_file}
        if client_pem:
            tls["tlsCertificateKeyFile"] = client_pem
    client = MongoClient(
        uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, socketTimeoutMS=10000, **tls
    )
    try:
        client.admin.command("ping")
        coll = client["services_probe"]["probe"]
        key = uuid.uuid4().hex
        coll.insert_one({"_id": key, "v": 1})
        doc = coll.find_one({"_id": key})
        if doc is None or doc.get("v") != 1:
            raise RuntimeError(f"read back {doc!r}")
        coll.delete_one({"_id": key})
        print(client.server_info().get("version", "?"))
    finally:
        client.close()


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "cassandra" and len(argv) >= 6:
            cassandra(*argv[2:])
        elif argv[1] == "cassandra-peers" and len(argv) == 6:
            cassandra_peers(*argv[2:])
        elif argv[1] == "cassandra-keyspace" and len(argv) == 7:
            cassandra_keyspace(*argv[2:])
        elif argv[1] == "cassandra-tls" and len(argv) == 7:
            import ssl

            context = ssl.create_default_context(cafile=argv[6])
            cassandra(*argv[2:6], ssl_context=context)
        elif argv[1] == "mongo" and 3 <= len(argv) <= 5:
            mongo(*argv[2:])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
