use oqmgr_actors::sandbox::{QmgrChoice, Sandbox};
use std::time::Duration;
#[test]
fn scratch() {
    let sb = Sandbox::builder()
        .qmgr(QmgrChoice::None)
        .main_cf("delay_warning_time", "1h")
        .start()
        .unwrap();
    let o = sb
        .sendmail(
            &[
                "-f",
                "s@example.com",
                "-N",
                "success,delay",
                "-R",
                "hdrs",
                "-V",
                "envid123",
                "a@example.net",
                "b@example.org",
            ],
            b"Subject: x\n\nhello\n",
        )
        .unwrap();
    assert!(o.status.success());
    let o = sb
        .sendmail(
            &["-v", "-f", "s@example.com", "-XV", "c@example.net"],
            "Subject: \u{e9}\n\nh\u{e9}llo\n".as_bytes(),
        )
        .unwrap();
    println!("{o:?}");
    assert!(
        sb.wait_for(Duration::from_secs(10), || sb.queue_files("incoming").len()
            == 2)
    );
    for (id, p) in sb.queue_files("incoming") {
        std::fs::copy(&p, format!("/tmp/wq/{id}")).unwrap();
        let o = sb.postcat(&["-e", "-v", p.to_str().unwrap()]).unwrap();
        println!("{}", String::from_utf8_lossy(&o.stdout));
        println!("{}", String::from_utf8_lossy(&o.stderr));
    }
}
