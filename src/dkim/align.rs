//! DMARC identifier alignment checks (RFC 7489 §3.1), done before sending so the user hears
//! that receivers will fail DMARC while the flags can still be fixed.
//!
//! Relaxed alignment compares organisational domains (RFC 7489 §3.2), found with the Public
//! Suffix List compiled into the `psl` crate: no network, no list file to keep up to date by hand.

/// The lower-case A-label form of a domain, without a trailing dot.
fn normalise(domain: &str) -> String {
    let trimmed = domain.trim().trim_end_matches('.');
    idna::domain_to_ascii(trimmed).unwrap_or_else(|_| trimmed.to_ascii_lowercase())
}

/// RFC 7489 §3.2: the registrable domain (one label below the public suffix). A name that is
/// itself a public suffix, or has no registrable part, stands for itself.
pub(crate) fn organisational_domain(domain: &str) -> String {
    let domain = normalise(domain);
    match psl::domain_str(&domain) {
        Some(org) => org.to_string(),
        None => domain,
    }
}

/// Warnings for identifiers that will not align with the From domain under relaxed DMARC
/// alignment: the envelope sender (SPF, RFC 7489 §3.1.2) and the DKIM `d=` (§3.1.1).
/// An empty list means both align (or were not given).
pub fn alignment_warnings(
    from_domain: &str,
    envelope_domain: Option<&str>,
    dkim_domain: Option<&str>,
) -> Vec<String> {
    let from = normalise(from_domain);
    let org = organisational_domain(&from);
    let mut warnings = Vec::new();
    if let Some(envelope) = envelope_domain {
        if organisational_domain(envelope) != org {
            warnings.push(format!(
                "SPF alignment will fail under DMARC: the envelope sender domain {} is not in \
                 the organisational domain {org} of the From domain {from}; use --envelope-from \
                 with an address @{from} (or another address under {org}), or drop \
                 --envelope-from to use the From address",
                normalise(envelope)
            ));
        }
    }
    if let Some(dkim) = dkim_domain {
        if organisational_domain(dkim) != org {
            warnings.push(format!(
                "DKIM alignment will fail under DMARC: the signing domain d={} is not in the \
                 organisational domain {org} of the From domain {from}; use --dkim-domain {from} \
                 (or another domain under {org}) with a key published there, or drop \
                 --dkim-domain to sign as the From domain",
                normalise(dkim)
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisational_domains_follow_the_public_suffix_list() {
        assert_eq!(organisational_domain("mail.example.com"), "example.com");
        assert_eq!(organisational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(organisational_domain("Example.COM."), "example.com");
        // A private-section suffix: every project under github.io is its own organisation.
        assert_eq!(organisational_domain("alice.github.io"), "alice.github.io");
        assert_eq!(organisational_domain("co.uk"), "co.uk");
        assert_eq!(
            organisational_domain("mail.bücher.example"),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn aligned_identifiers_give_no_warning() {
        assert!(alignment_warnings("example.com", None, None).is_empty());
        assert!(alignment_warnings(
            "example.com",
            Some("bounces.example.com"),
            Some("mail.EXAMPLE.com")
        )
        .is_empty());
        assert!(alignment_warnings("news.example.co.uk", Some("example.co.uk"), None).is_empty());
    }

    #[test]
    fn misaligned_envelope_names_the_fix() {
        let w = alignment_warnings("example.com", Some("mailer.example.net"), None);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("SPF alignment will fail"));
        assert!(w[0].contains("mailer.example.net"));
        assert!(w[0].contains("--envelope-from with an address @example.com"));
        assert!(w[0].contains("drop --envelope-from"));
    }

    #[test]
    fn misaligned_dkim_domain_names_the_fix() {
        let w = alignment_warnings("example.com", None, Some("esp.example"));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("DKIM alignment will fail"));
        assert!(w[0].contains("d=esp.example"));
        assert!(w[0].contains("--dkim-domain example.com"));
    }

    #[test]
    fn sibling_projects_under_a_public_suffix_do_not_align() {
        let w = alignment_warnings("alice.github.io", Some("bob.github.io"), Some("github.io"));
        assert_eq!(w.len(), 2);
    }
}
