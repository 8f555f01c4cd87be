//! Where the harvester may fetch from: an allow-list of hosts, and no loopback, private or
//! link-local addresses unless configured (a catalog file must not make Cadastre probe the
//! internal network).

use std::net::IpAddr;

use crate::Settings;

/// Why a fetch is refused, or `Ok` with nothing to say.
pub async fn check_url(url: &url::Url, settings: &Settings) -> Result<(), String> {
    if url.scheme() == "file" {
        return if settings.allow_local_repositories {
            Ok(())
        } else {
            Err(format!(
                "{url}: local repositories are not allowed (harvester.allow_local_repositories)"
            ))
        };
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if !host_allowed(&host, &settings.allowed_hosts) {
        return Err(format!(
            "{host} is not in the allowed hosts (harvester.allowed_hosts)"
        ));
    }
    if settings.allow_private_addresses {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(address) => vec![address],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("{host}: cannot resolve: {e}"))?
            .map(|socket| socket.ip())
            .collect(),
    };
    if let Some(address) = addresses.iter().find(|a| is_internal(a)) {
        return Err(format!(
            "{host} resolves to {address}, an internal address (harvester.allow_private_addresses)"
        ));
    }
    Ok(())
}

/// `*` allows every host; `*.example.com` a domain's subdomains; anything else one host.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        pattern == "*"
            || pattern == host
            || pattern
                .strip_prefix("*.")
                .is_some_and(|domain| host.ends_with(&format!(".{domain}")))
    })
}

fn is_internal(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(&IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_internal_addresses_and_unlisted_hosts() {
        let settings = Settings {
            allowed_hosts: vec![
                "*.example.com".into(),
                "127.0.0.1".into(),
                "localhost".into(),
            ],
            ..Settings::default()
        };
        let url = |text: &str| url::Url::parse(text).unwrap();
        let refused = check_url(&url("http://127.0.0.1:8080/x"), &settings)
            .await
            .unwrap_err();
        assert!(refused.contains("internal address"), "{refused}");
        let refused = check_url(&url("http://localhost/x"), &settings)
            .await
            .unwrap_err();
        assert!(refused.contains("internal address"), "{refused}");
        let refused = check_url(&url("https://evil.test/x"), &settings)
            .await
            .unwrap_err();
        assert!(refused.contains("not in the allowed hosts"), "{refused}");
        let refused = check_url(&url("file:///srv/repo"), &settings)
            .await
            .unwrap_err();
        assert!(refused.contains("local repositories"), "{refused}");
        let open = Settings {
            allow_private_addresses: true,
            ..settings
        };
        assert!(
            check_url(&url("http://127.0.0.1:8080/x"), &open)
                .await
                .is_ok()
        );
        for internal in [
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(&internal.parse().unwrap()), "{internal}");
        }
        assert!(!is_internal(&"93.184.216.34".parse().unwrap()));
        assert!(host_allowed("git.example.com", &["*.example.com".into()]));
        assert!(!host_allowed("example.com.evil", &["*.example.com".into()]));
    }
}
