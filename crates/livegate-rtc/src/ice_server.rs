//! STUN and TURN servers we tell clients about: parsed from one operator-written string, and
//! written as the `Link` header values of a WHIP/WHEP response (RFC 9725 §4.4).
//!
//! Not here: using them ourselves. The server has public host candidates (or a 1:1 NAT
//! address); the ICE servers are for clients behind NATs and firewalls that need a relay.
//!
//! # Syntax
//!
//! A comma-separated list of entries, whitespace around entries ignored, empty string for
//! none:
//!
//! ```text
//! stun:stun.example.org:3478, turn:alice:s3cret@turn.example.org:3478?transport=udp
//! ```
//!
//! Each entry is a STUN or TURN URI (RFC 7064 §3.1, RFC 7065 §3.1: `stun:`, `stuns:`,
//! `turn:`, `turns:`, a host name or address (IPv6 in brackets), an optional port, and for
//! TURN an optional `?transport=udp|tcp`), with, for TURN only and required there,
//! `username:credential@` after the scheme. The username ends at the first `:`, the
//! credential at the last `@`; a `%`, `,`, `:` in a username or a `%`, `,` in a credential
//! must be written percent-encoded (`%25`, `%2C`, `%3A`), and any byte may be.

use std::fmt::Write as _;
use std::str::FromStr;

/// One STUN or TURN server as a client's `RTCIceServer` wants it (W3C WebRTC §4.2.2).
/// `Debug` prints the credential as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// STUN/TURN URIs without credentials, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN password (the only credential type RFC 9725 §4.4 names).
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why an ICE server entry was refused; each names the entry (credentials left out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceServerError {
    #[error("empty ICE server entry (two commas in a row, or a trailing comma)")]
    EmptyEntry,
    /// Carries the scheme only (what comes before the first `:`).
    #[error("{0:?}: the scheme must be stun:, stuns:, turn: or turns:")]
    UnknownScheme(String),
    #[error("{0:?}: no host")]
    MissingHost(String),
    #[error("{0:?}: the host is not a name or an address")]
    BadHost(String),
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?}: the only query is ?transport=udp or ?transport=tcp, and only for TURN")]
    BadQuery(String),
    #[error("{0:?}: a TURN server needs username:credential@ before the host")]
    MissingCredentials(String),
    #[error("{0:?}: a STUN server takes no credentials")]
    CredentialsOnStun(String),
    #[error("{0:?}: bad percent-encoding in the credentials")]
    BadEscape(String),
    #[error("{0:?}: the credentials must be UTF-8 without control characters")]
    BadCredentials(String),
}

impl IceServer {
    /// Parses a list (see the module docs); the empty string is the empty list.
    pub fn parse_list(list: &str) -> Result<Vec<IceServer>, IceServerError> {
        if list.trim().is_empty() {
            return Ok(Vec::new());
        }
        list.split(',').map(|entry| entry.trim().parse()).collect()
    }

    /// The value of one `Link` header announcing this server (RFC 9725 §4.4), one link-value
    /// per URL, comma-separated (RFC 8288 §3), e.g.
    /// `<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="alice";
    /// credential="s3cret"; credential-type="password"`.
    pub fn link_header_value(&self) -> String {
        let mut value = String::new();
        for (i, url) in self.urls.iter().enumerate() {
            if i > 0 {
                value.push_str(", ");
            }
            // The URL's characters were checked on parsing: none of them can end the
            // `<...>` (RFC 8288 §3: URI-Reference).
            let _ = write!(value, "<{url}>; rel=\"ice-server\"");
            if let Some(username) = &self.username {
                value.push_str("; username=");
                push_quoted(&mut value, username);
            }
            if let Some(credential) = &self.credential {
                value.push_str("; credential=");
                push_quoted(&mut value, credential);
                value.push_str("; credential-type=\"password\"");
            }
        }
        value
    }
}

/// Appends `text` as an RFC 9110 §5.6.4 quoted-string: `"` and `\` escaped with a
/// backslash. Control characters cannot be represented and were refused on parsing.
fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

impl FromStr for IceServer {
    type Err = IceServerError;

    /// Parses one entry (see the module docs).
    fn from_str(entry: &str) -> Result<IceServer, IceServerError> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(IceServerError::EmptyEntry);
        }
        // Without a colon there is no password to leak by naming the entry.
        let (scheme, rest) = entry
            .split_once(':')
            .ok_or_else(|| IceServerError::UnknownScheme(entry.to_owned()))?;
        let turn = match scheme.to_ascii_lowercase().as_str() {
            "stun" | "stuns" => false,
            "turn" | "turns" => true,
            _ => return Err(IceServerError::UnknownScheme(scheme.to_owned())),
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        // What we name in errors and publish: never the credentials.
        let url = format!("{scheme}:{rest}");
        let (hostport, query) = match rest.split_once('?') {
            Some((hostport, query)) => (hostport, Some(query)),
            None => (rest, None),
        };
        check_hostport(hostport, &url)?;
        if let Some(query) = query {
            let transport = query.strip_prefix("transport=");
            if !turn || !matches!(transport, Some("udp" | "tcp")) {
                return Err(IceServerError::BadQuery(url));
            }
        }
        let (username, credential) = match (userinfo, turn) {
            (None, true) => return Err(IceServerError::MissingCredentials(url)),
            (Some(_), false) => return Err(IceServerError::CredentialsOnStun(url)),
            (None, false) => (None, None),
            (Some(userinfo), true) => {
                let (username, credential) = userinfo
                    .split_once(':')
                    .ok_or_else(|| IceServerError::MissingCredentials(url.clone()))?;
                let username = percent_decode(username, &url)?;
                let credential = percent_decode(credential, &url)?;
                if username.is_empty() {
                    return Err(IceServerError::MissingCredentials(url));
                }
                (Some(username), Some(credential))
            }
        };
        Ok(IceServer {
            urls: vec![url],
            username,
            credential,
        })
    }
}

/// `host[:port]`, host a DNS name, an IPv4 address or a bracketed IPv6 address.
fn check_hostport(hostport: &str, url: &str) -> Result<(), IceServerError> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (v6, after) = bracketed
            .split_once(']')
            .ok_or_else(|| IceServerError::BadHost(url.to_owned()))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(IceServerError::BadHost(url.to_owned()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| IceServerError::BadHost(url.to_owned()))?,
            ),
        };
        (None, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(hostport), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(IceServerError::MissingHost(url.to_owned()));
        }
        // RFC 3986 reg-name as DNS uses it: letters, digits, '-', '.'.
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(IceServerError::BadHost(url.to_owned()));
        }
    }
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)) {
            return Err(IceServerError::BadPort(url.to_owned()));
        }
    }
    Ok(())
}

fn percent_decode(text: &str, url: &str) -> Result<String, IceServerError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| IceServerError::BadEscape(url.to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| IceServerError::BadCredentials(url.into()))?;
    if decoded.chars().any(char::is_control) {
        return Err(IceServerError::BadCredentials(url.to_owned()));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_credential() {
        let server: IceServer = "turn:user:pa55word@turn.example.org:3478".parse().unwrap();
        let debug = format!("{server:?}");
        assert!(!debug.contains("pa55word"), "{debug}");
        assert!(debug.contains(r#"credential: Some("***")"#), "{debug}");
    }

    #[test]
    fn parses_the_documented_example() {
        let servers = IceServer::parse_list(
            "stun:stun.example.org:3478, turn:alice:s3cret@turn.example.org:3478?transport=udp",
        )
        .unwrap();
        assert_eq!(
            servers,
            vec![
                IceServer {
                    urls: vec!["stun:stun.example.org:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                    username: Some("alice".into()),
                    credential: Some("s3cret".into()),
                },
            ]
        );
        assert_eq!(IceServer::parse_list("  ").unwrap(), vec![]);
    }

    #[test]
    fn writes_rfc9725_link_values() {
        let stun: IceServer = "stun:stun.example.net".parse().unwrap();
        assert_eq!(
            stun.link_header_value(),
            r#"<stun:stun.example.net>; rel="ice-server""#
        );
        let turn: IceServer = "turns:user:myPassword@[2001:db8::1]:5349?transport=tcp"
            .parse()
            .unwrap();
        assert_eq!(
            turn.link_header_value(),
            r#"<turns:[2001:db8::1]:5349?transport=tcp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password""#
        );
        let two = IceServer {
            urls: vec!["turn:a.example".into(), "turn:b.example".into()],
            username: Some("u".into()),
            credential: Some("p".into()),
        };
        let value = two.link_header_value();
        assert_eq!(value.matches("rel=\"ice-server\"").count(), 2);
        assert!(value.contains(r#"credential-type="password", <turn:b.example>"#));
    }

    #[test]
    fn credentials_are_unescaped_from_the_list_and_quoted_in_the_header() {
        // A credential with every character that means something in the list syntax, in
        // userinfo, or in a quoted-string: , @ : " \ %.
        let server: IceServer = r#"turn:a%3Ab:p%2Cw@d:"q"\%25@turn.example.org"#.parse().unwrap();
        assert_eq!(server.username.as_deref(), Some("a:b"));
        assert_eq!(server.credential.as_deref(), Some(r#"p,w@d:"q"\%"#));
        assert_eq!(server.urls, vec!["turn:turn.example.org"]);
        assert_eq!(
            server.link_header_value(),
            r#"<turn:turn.example.org>; rel="ice-server"; username="a:b"; credential="p,w@d:\"q\"\\%"; credential-type="password""#
        );
    }

    #[test]
    fn refuses_bad_entries_with_a_reason_and_without_the_secret() {
        use IceServerError::*;
        type Variant = fn(String) -> IceServerError;
        let cases: &[(&str, Variant)] = &[
            ("http://u:secret@stun.example.org", UnknownScheme),
            ("stun.example.org", UnknownScheme),
            ("turn:turn.example.org", MissingCredentials),
            ("turn:nopassword@turn.example.org", MissingCredentials),
            ("turn::secret@turn.example.org", MissingCredentials),
            ("stun:u:secret@stun.example.org", CredentialsOnStun),
            ("stun:", MissingHost),
            ("stun::3478", MissingHost),
            ("stun:bad host", BadHost),
            ("stun:[::1", BadHost),
            ("stun:[not-v6]:3478", BadHost),
            ("stun:stun.example.org:0", BadPort),
            ("stun:stun.example.org:65536", BadPort),
            ("stun:stun.example.org:+80", BadPort),
            ("stun:stun.example.org?transport=udp", BadQuery),
            ("turn:u:secret@turn.example.org?transport=sctp", BadQuery),
            ("turn:u:secret%2@turn.example.org", BadEscape),
            ("turn:u:secret%0A@turn.example.org", BadCredentials),
            ("turn:u:secret%FF@turn.example.org", BadCredentials),
        ];
        for (entry, _) in cases {
            let error = entry.parse::<IceServer>().unwrap_err();
            let message = error.to_string();
            assert!(!message.contains("secret"), "{entry}: {message}");
        }
        for (entry, want) in cases {
            let error = entry.parse::<IceServer>().unwrap_err();
            let url = match &error {
                EmptyEntry => unreachable!(),
                UnknownScheme(u)
                | MissingHost(u)
                | BadHost(u)
                | BadPort(u)
                | BadQuery(u)
                | MissingCredentials(u)
                | CredentialsOnStun(u)
                | BadEscape(u)
                | BadCredentials(u) => u.clone(),
            };
            assert_eq!(error, want(url), "{entry}");
        }
        assert_eq!(
            IceServer::parse_list("stun:a.example,,stun:b.example"),
            Err(EmptyEntry)
        );
        assert_eq!(IceServer::parse_list("stun:a.example,"), Err(EmptyEntry));
    }

    /// Reads a quoted-string back (the inverse of `push_quoted`).
    fn unquote(quoted: &str) -> String {
        let inner = &quoted[1..quoted.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' { chars.next().unwrap() } else { c });
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn any_credentials_survive_the_list_and_the_header(
            username in "[^\\p{Cc}]{1,20}",
            credential in "[^\\p{Cc}]{0,20}",
        ) {
            let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
            let entry = format!("turn:{}:{}@turn.example.org", encode(&username), encode(&credential));
            let servers = IceServer::parse_list(&format!("stun:s.example, {entry}")).unwrap();
            proptest::prop_assert_eq!(servers[1].username.as_deref(), Some(username.as_str()));
            proptest::prop_assert_eq!(servers[1].credential.as_deref(), Some(credential.as_str()));
            let value = servers[1].link_header_value();
            let param = |name: &str| {
                let start = value.find(&format!("; {name}=\"")).unwrap() + name.len() + 3;
                // The quoted-string ends at the first '"' not escaped by a backslash.
                let bytes = value.as_bytes();
                let mut end = start + 1;
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                unquote(&value[start..=end])
            };
            proptest::prop_assert_eq!(param("username"), username);
            proptest::prop_assert_eq!(param("credential"), credential);
        }
    }
}
