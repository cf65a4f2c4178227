mod common;
use authcheck_testdns::TestDns;
use common::*;
#[tokio::test]
async fn show() {
    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject; pct=50");
    publish_keys(&dns, "sender.test");
    let m = sign(&message("alice@sender.test", "x", "hi\r\n"), &SignOptions::new("sender.test", TestKey::Rsa2048));
    let mut m2 = m.clone(); m2.extend_from_slice(b"x\r\n");
    let r = verify(&verifier(&dns), "192.0.2.10", "mail.sender.test", "alice@sender.test", &m).await;
    println!("{}\n{:#?}", r.authentication_results, r.dmarc);
    let r = verify(&verifier(&dns), "192.0.2.99", "mail.sender.test", "alice@sender.test", &m2).await;
    println!("{}\n{:#?}\n{}", r.authentication_results, r.dmarc, serde_json::to_string_pretty(&r.arc).unwrap());
}
