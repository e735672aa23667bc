//! Where a load run may send traffic: the loopback range unless the operator says
//! otherwise. A load tool pointed at the wrong host is a flood; this refuses before the
//! first packet.

use std::net::IpAddr;

use reqwest::Url;

/// Why a URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("{0}: not a URL")]
    Unparsable(String),
    #[error("{0}: no host")]
    NoHost(String),
    #[error("cannot resolve {host}: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error(
        "{host} resolves to {addresses} — not only loopback; pass --allow-remote to load a \
         host that is not this machine's loopback"
    )]
    NotLoopback { host: String, addresses: String },
}

/// Resolves the URL's host; unless `allow_remote`, every address it resolves to must be a
/// loopback address (127.0.0.0/8, ::1), so a name that resolves to both is refused too.
pub async fn check(url: &str, allow_remote: bool) -> Result<Vec<IpAddr>, TargetError> {
    let parsed = Url::parse(url).map_err(|_| TargetError::Unparsable(url.to_owned()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| TargetError::NoHost(url.to_owned()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| TargetError::Unresolvable {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .map(|addr| addr.ip())
        .collect();
    if addresses.is_empty() {
        return Err(TargetError::Unresolvable {
            host,
            reason: "no address".to_owned(),
        });
    }
    if !allow_remote && !addresses.iter().all(IpAddr::is_loopback) {
        let listed: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        return Err(TargetError::NotLoopback {
            host,
            addresses: listed.join(", "),
        });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_literals_and_localhost_pass() {
        for url in [
            "http://127.0.0.1:8935/live/cam/whep",
            "http://127.9.8.7/live/cam/whep",
            "http://[::1]:8935/live/cam/whep",
            "http://localhost:8935/live/cam/whep",
        ] {
            let addresses = check(url, false).await.unwrap();
            assert!(addresses.iter().all(IpAddr::is_loopback), "{url}");
        }
    }

    #[tokio::test]
    async fn other_addresses_need_allow_remote() {
        // Literals only: nothing is looked up on the network.
        for url in [
            "http://192.0.2.10:8935/x",
            "http://[2001:db8::1]/x",
            "http://0.0.0.0:1/x",
        ] {
            assert!(
                matches!(
                    check(url, false).await,
                    Err(TargetError::NotLoopback { .. })
                ),
                "{url}"
            );
            assert!(check(url, true).await.is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        assert_eq!(
            check("not a url", false).await,
            Err(TargetError::Unparsable("not a url".to_owned()))
        );
        assert!(matches!(
            check("data:text/plain,x", true).await,
            Err(TargetError::NoHost(_))
        ));
    }
}
