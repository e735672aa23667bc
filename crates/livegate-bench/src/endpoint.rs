//! The WHIP or WHEP endpoint a client talks to: its URL, checked, and the local address a
//! peer connection binds to reach it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use crate::error::{ClientError, Side};

/// The endpoint `url`, checked (see [`parse`]), and the address a peer connection reaching
/// it binds (see [`bind_addr`]).
pub(crate) async fn resolve(
    url: &str,
    udp_bind: Option<SocketAddr>,
    loopback_only: bool,
    side: Side,
) -> Result<(Url, SocketAddr), ClientError> {
    let endpoint = parse(url, side)?;
    let bind = bind_addr(&endpoint, udp_bind, loopback_only, side).await?;
    Ok((endpoint, bind))
}

/// Parses `url`; only `http://` is usable, since this crate is built without TLS.
fn parse(url: &str, side: Side) -> Result<Url, ClientError> {
    let bad = |reason: String| ClientError::Url { side, reason };
    let endpoint = Url::parse(url).map_err(|e| bad(format!("{url}: {e}")))?;
    if endpoint.scheme() != "http" {
        return Err(bad(format!(
            "{url}: only http:// is supported (built without TLS)"
        )));
    }
    Ok(endpoint)
}

/// The peer connection's socket address: `udp_bind` if given, else a concrete IP, because
/// it is also the host candidate: loopback (of the URL's family) when `loopback_only`,
/// otherwise the address this host would use to reach the URL's host (a connected UDP
/// socket sends nothing).
async fn bind_addr(
    endpoint: &Url,
    udp_bind: Option<SocketAddr>,
    loopback_only: bool,
    side: Side,
) -> Result<SocketAddr, ClientError> {
    if let Some(bind) = udp_bind {
        return Ok(bind);
    }
    let bad = |reason: String| ClientError::Url { side, reason };
    let host = endpoint
        .host_str()
        .ok_or_else(|| bad(format!("{endpoint}: no host")))?;
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if loopback_only {
        let ip = match literal {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        return Ok(SocketAddr::new(ip, 0));
    }
    let port = endpoint.port_or_known_default().unwrap_or(80);
    let target = match literal {
        Some(ip) => SocketAddr::new(ip, port),
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bad(format!("{endpoint}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{endpoint}: no address")))?,
    };
    let unspecified: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .and_then(|socket| socket.connect(target).map(|()| socket))
        .and_then(|socket| socket.local_addr())
        .map_err(|e| bad(format!("{endpoint}: no route: {e}")))?;
    Ok(SocketAddr::new(probe.ip(), 0))
}
