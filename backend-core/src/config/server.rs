//! `server` / `nodes` values: `host`, `host:port`, `[v6]:port`, a bare IPv6
//! address, or a Unix socket path; comma-separated lists for the pools that
//! take several (Redis Sentinel, Cassandra nodes, MongoDB replica sets).

use std::fmt;

/// One server address.
///
/// ```
/// use backend_core::config::ServerAddr;
/// assert_eq!(ServerAddr::parse("db:5433", 5432), Ok(ServerAddr::new("db", 5433)));
/// assert_eq!(ServerAddr::parse("[::1]", 5432), Ok(ServerAddr::new("::1", 5432)));
/// assert_eq!(ServerAddr::parse("[::1]:7", 1).map(|a| a.to_string()), Ok("[::1]:7".to_owned()));
/// assert!(ServerAddr::parse("db:0", 5432).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// Host name, IP address (IPv6 without brackets) or Unix socket path.
    pub host: String,
    /// TCP port (the default port for a socket path).
    pub port: u16,
}

impl ServerAddr {
    /// An address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ServerAddr {
            host: host.into(),
            port,
        }
    }

    /// Whether the host is a Unix socket path.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// Parses one address; `default_port` where none is written. The error
    /// says what is wrong, quoting the text.
    pub fn parse(text: &str, default_port: u16) -> Result<ServerAddr, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("the address is empty".into());
        }
        if s.starts_with('/') {
            return Ok(ServerAddr::new(s, default_port));
        }
        if s.contains(',') {
            return Err(format!("`{s}`: one server only (host:port)"));
        }
        let port = |p: &str| -> Result<u16, String> {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port `{p}` in `{s}`"))
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: `[` without `]`"))?;
            if host.is_empty() {
                return Err(format!("`{s}` has no host"));
            }
            return match after {
                "" => Ok(ServerAddr::new(host, default_port)),
                _ => match after.strip_prefix(':') {
                    Some(p) => Ok(ServerAddr::new(host, port(p)?)),
                    None => Err(format!("`{s}`: expected `:port` after `]`")),
                },
            };
        }
        match s.matches(':').count() {
            0 => Ok(ServerAddr::new(s, default_port)),
            1 => {
                let (host, p) = s.split_once(':').unwrap_or((s, ""));
                if host.is_empty() {
                    return Err(format!("`{s}` has no host"));
                }
                Ok(ServerAddr::new(host, port(p)?))
            }
            // A bare IPv6 address.
            _ => Ok(ServerAddr::new(s, default_port)),
        }
    }

    /// Parses a comma-separated list of addresses (at least one).
    ///
    /// ```
    /// use backend_core::config::ServerAddr;
    /// let nodes = ServerAddr::parse_list("10.0.0.1:9042, 10.0.0.2", 9042).unwrap();
    /// assert_eq!(nodes[1], ServerAddr::new("10.0.0.2", 9042));
    /// assert!(ServerAddr::parse_list("a,,b", 1).is_err());
    /// ```
    pub fn parse_list(text: &str, default_port: u16) -> Result<Vec<ServerAddr>, String> {
        text.split(',')
            .map(|item| {
                if item.trim().is_empty() {
                    Err(format!("`{text}` has an empty address"))
                } else {
                    ServerAddr::parse(item, default_port)
                }
            })
            .collect()
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_socket() {
            f.write_str(&self.host)
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses() {
        let p = |s| ServerAddr::parse(s, 3306);
        assert_eq!(p("db"), Ok(ServerAddr::new("db", 3306)));
        assert_eq!(p(" db:3307 "), Ok(ServerAddr::new("db", 3307)));
        assert_eq!(p("::1"), Ok(ServerAddr::new("::1", 3306)));
        assert_eq!(
            p("/run/mysqld/mysqld.sock"),
            Ok(ServerAddr::new("/run/mysqld/mysqld.sock", 3306))
        );
        assert!(p("/run/x.sock").is_ok_and(|a| a.is_socket()));
        for bad in [
            "", "db:x", "db:0", ":3306", "a:1,b:2", "[::1", "[::1]x", "[]:1", "db:70000",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ServerAddr::new("/s", 1).to_string(), "/s");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = ServerAddr::parse(&s, 1);
            let _ = ServerAddr::parse_list(&s, 1);
        }
    }
}
