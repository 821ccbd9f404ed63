//! The `email` channel: one message per event to all recipients over SMTP.
//!
//! The connection is encrypted unless the settings say `smtpTls: none`:
//! `starttls` (the default, port 587) upgrades a plain connection and
//! refuses to go on when the server does not offer STARTTLS, `tls` speaks
//! TLS from the first byte (port 465). The server's certificate is checked
//! against the Mozilla roots plus the PEM file in `NOTIFY_SMTP_CA_FILE`,
//! for relays with a private CA. Credentials are never sent in clear: the
//! settings refuse a username with `none`.

use super::channels::Message;
use super::{DeliveryError, SmtpTarget};
use ai_review_protocol::notifications::SmtpTls;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// The port used when the settings give none.
pub fn default_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    }
}

/// Parses an address as the settings hold it (`a@b.c` or `Name <a@b.c>`).
pub fn mailbox(field: &str, value: &str) -> Result<Mailbox, String> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{field}: {value:?} is not an email address ({e})"))
}

/// Checks a PEM bundle holds at least one certificate lettre accepts.
pub fn check_ca_pem(pem: &str) -> Result<(), String> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned());
    }
    Certificate::from_pem(pem.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("not a PEM certificate ({e})"))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The email for a message: the title as subject, the lines and the link
/// as text, and the same as simple HTML.
pub fn build(from: &Mailbox, to: &[Mailbox], m: &Message) -> Result<lettre::Message, String> {
    let mut text = String::new();
    for l in &m.lines {
        text.push_str(l);
        text.push_str("\n\n");
    }
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h2 style=\"font-size:1.1em\">{}</h2>",
        escape_html(&m.title)
    );
    for l in &m.lines {
        html.push_str(&format!("<p>{}</p>", escape_html(l)));
    }
    if let Some(link) = &m.link {
        text.push_str(&format!("Open the review: {link}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">Open the review</a></p>",
            escape_html(link)
        ));
    }
    text.push_str(
        "\n-- \nSent by ai-review. Change what you receive in Settings > Notifications.\n",
    );
    html.push_str("<p style=\"color:#666;font-size:0.9em\">Sent by ai-review. Change what you receive in Settings &gt; Notifications.</p></body></html>");
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(m.title.clone());
    for t in to {
        b = b.to(t.clone());
    }
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
    )
    .map_err(|e| format!("could not build the email ({e})"))
}

/// Sends `m` through the SMTP server of `t`, within `timeout`.
pub async fn send(
    t: &SmtpTarget,
    extra_roots: Option<&str>,
    m: &Message,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let from = mailbox("smtpFrom", &t.from).map_err(DeliveryError::permanent)?;
    let to = t
        .recipients
        .iter()
        .map(|r| mailbox("emailRecipients", r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DeliveryError::permanent)?;
    let email = build(&from, &to, m).map_err(DeliveryError::permanent)?;
    let tls = || -> Result<TlsParameters, DeliveryError> {
        let mut b = TlsParameters::builder(t.host.clone());
        if let Some(pem) = extra_roots {
            let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                DeliveryError::permanent(format!("NOTIFY_SMTP_CA_FILE is not usable ({e})"))
            })?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| DeliveryError::permanent(format!("TLS setup failed ({e})")))
    };
    let mode = match t.tls {
        SmtpTls::Starttls => Tls::Required(tls()?),
        SmtpTls::Tls => Tls::Wrapper(tls()?),
        SmtpTls::None => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(t.host.clone())
        .port(t.port)
        .tls(mode)
        .timeout(Some(timeout));
    if let Some(user) = &t.username {
        b = b.credentials(Credentials::new(
            user.clone(),
            t.password.clone().unwrap_or_default(),
        ));
    }
    let transport = b.build();
    // lettre's timeout covers each read and write; this one bounds the
    // whole exchange, so a server that trickles bytes cannot hold a sender.
    match tokio::time::timeout(timeout, transport.send(email)).await {
        Err(_) => Err(DeliveryError::retry(format!(
            "the SMTP server did not finish within {} ms",
            timeout.as_millis()
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(explain(&e)),
    }
}

/// A reason a user can act on, and whether trying again can help.
fn explain(e: &lettre::transport::smtp::Error) -> DeliveryError {
    // lettre's Display holds the server's reply (code and text); it never
    // holds the credentials.
    if e.is_permanent() {
        DeliveryError::permanent(format!("the SMTP server refused: {e}"))
    } else if e.is_transient() {
        DeliveryError::retry(format!("the SMTP server deferred: {e}"))
    } else if e.is_timeout() {
        DeliveryError::retry("the SMTP server did not answer in time".to_owned())
    } else if e.is_tls() || e.to_string().contains("certificate") {
        DeliveryError::retry(format!(
            "TLS with the SMTP server failed ({e}); for a private CA set NOTIFY_SMTP_CA_FILE"
        ))
    } else {
        DeliveryError::retry(format!("could not talk to the SMTP server ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_carries_title_lines_and_link_in_text_and_html() {
        let m = Message {
            title: "Review completed: Fix <login>".into(),
            lines: vec!["Rating: 4/5".into()],
            link: Some("https://ai-review.example.com/reviews/r1".into()),
        };
        let from = mailbox("smtpFrom", "ai-review <bot@example.com>").expect("from");
        let to = [mailbox("emailRecipients", "dev@example.com").expect("to")];
        let raw =
            String::from_utf8(build(&from, &to, &m).expect("email").formatted()).expect("utf-8");
        assert!(
            raw.contains("Subject: Review completed: Fix <login>"),
            "{raw}"
        );
        assert!(raw.contains("To: dev@example.com"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Open the review: https://ai-review.example.com/reviews/r1"));
        assert!(raw.contains("Fix &lt;login&gt;"), "HTML is escaped: {raw}");
    }

    #[test]
    fn bad_addresses_name_the_field() {
        let e = mailbox("emailRecipients", "not an address").expect_err("bad");
        assert!(e.starts_with("emailRecipients: \"not an address\""), "{e}");
        assert_eq!(default_port(SmtpTls::Tls), 465);
        assert!(check_ca_pem("nope").is_err());
    }
}
