//! `expirenza-agent preview OPERATION [--table N] [--bill ID]`: the exact body `run` would send.
//!
//! The request frame the cloud would send is built (`rID` = `preview`), then it goes through the
//! code `run` uses: [`crate::request::parse_envelope`], [`crate::ops::handle`] on a context built
//! by [`Ctx::new`] from the same config, and [`SignedBody::new`] (serialise once, sign those
//! bytes). No network: the callback client is built but never used. versionInfo shows the
//! ORDERS_CACHE as unavailable (no push has happened in this process).
//!
//! The journal is not opened at its configured path: read operations never use it, and a
//! `preview` run as root must not create a root-owned journal the agent then cannot write. The
//! context gets a throw-away journal in a temporary directory, removed afterwards.

use std::process::ExitCode;
use std::sync::Arc;

use crate::callback::CallbackClient;
use crate::config::Config;
use crate::ctx::Ctx;
use crate::json::JsonBuf;
use crate::ops::{self, Answer, Op};
use crate::request::parse_envelope;
use crate::scratch_dir::ScratchDir;
use crate::sign::SignedBody;

/// The rID a preview request carries.
pub const PREVIEW_RID: &str = "preview";

/// The operations `preview` accepts: those that only read the mirror.
pub const READ_OPS: [Op; 9] = [
    Op::CheckWork,
    Op::VersionInfo,
    Op::TablesInfo,
    Op::HallplansInfo,
    Op::GetBill,
    Op::UsersInfo,
    Op::CategoriesInfo,
    Op::MenuInfo,
    Op::StopList,
];

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("unknown operation '{0}'; preview takes one of: {list}", list = read_op_names())]
    Unknown(String),
    #[error("{0} changes the POS or answers nothing; preview takes only read operations: {list}", list = read_op_names())]
    NotRead(&'static str),
    #[error("getBill needs --table N or --bill ID")]
    GetBillNeedsTarget,
    #[error("{0} takes no --table or --bill")]
    NoTarget(&'static str),
    #[error("{0}")]
    Setup(String),
    #[error("{op} produced no answer: {message}")]
    Failed { op: &'static str, message: String },
}

fn read_op_names() -> String {
    READ_OPS.map(|o| o.name()).join(", ")
}

/// The read operation named `name` (same case rules as the dispatcher).
pub fn read_op(name: &str) -> Result<Op, PreviewError> {
    let op = Op::from_name(name).ok_or_else(|| PreviewError::Unknown(name.into()))?;
    if !READ_OPS.contains(&op) {
        return Err(PreviewError::NotRead(op.name()));
    }
    Ok(op)
}

/// The frame the cloud would send: `{"rID":"preview","operation":…[,"tableNumber":…][,"billId":…]}`.
pub fn request_frame(
    op: Op,
    table: Option<&str>,
    bill: Option<&str>,
) -> Result<Vec<u8>, PreviewError> {
    match (op, table.is_some() || bill.is_some()) {
        (Op::GetBill, false) => return Err(PreviewError::GetBillNeedsTarget),
        (Op::GetBill, true) => {}
        (other, true) => return Err(PreviewError::NoTarget(other.name())),
        (_, false) => {}
    }
    let mut j = JsonBuf::new(64 * 1024);
    j.begin_obj()
        .f_str("rID", PREVIEW_RID)
        .f_str("operation", op.name());
    if let Some(t) = table {
        j.f_str("tableNumber", t);
    }
    if let Some(b) = bill {
        j.f_str("billId", b);
    }
    j.end_obj();
    j.finish().map_err(|e| PreviewError::Setup(e.to_string()))
}

/// Build the signed body `run` would POST for `frame`.
pub fn answer(cfg: &Config, op: Op, frame: &[u8]) -> Result<SignedBody, PreviewError> {
    let scratch = ScratchDir::new("preview").map_err(|e| PreviewError::Setup(e.to_string()))?;
    let mut cfg = cfg.clone();
    cfg.journal.path = Some(scratch.path().join("journal.sqlite"));
    let cfg = Arc::new(cfg);
    let callback = CallbackClient::new(&cfg).map_err(|e| PreviewError::Setup(e.to_string()))?;
    let ctx = Ctx::new(cfg.clone(), callback);
    let env = parse_envelope(frame).map_err(|e| PreviewError::Setup(e.to_string()))?;
    match ops::handle(op, &ctx, &env, frame) {
        Ok(Answer::Callback { body, .. }) => Ok(SignedBody::new(&cfg.secret, body)),
        Ok(Answer::Stream { body, .. }) => Err(PreviewError::Failed {
            op: op.name(),
            message: format!(
                "the answer is {} bytes, over [limits] max_body_bytes: `run` streams it; \
                 preview shows answers up to max_body_bytes",
                body.len()
            ),
        }),
        // Read operations always answer with a body; anything else (no answer, a wait for the
        // POS) is not something preview can show.
        Ok(_) => Err(PreviewError::Failed {
            op: op.name(),
            message: "no callback body".into(),
        }),
        Err(e) => Err(PreviewError::Failed {
            op: op.name(),
            message: e.to_string(),
        }),
    }
}

pub const COMMAND: super::Command = super::Command {
    name: "preview",
    summary: "Print the exact callback body `run` would send for a read operation. No network.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent preview OPERATION [--table N] [--bill ID] [--config PATH]

Print to stdout the exact callback body `run` would send for a read operation (checkWork,
versionInfo, tablesInfo, hallplansInfo, getBill, usersInfo, categoriesInfo, menuInfo,
stopList), computed from the local mirror with rID `preview`; the `signature` header it would
carry goes to stderr. Needs the secret (it signs). No network.

Exit 0 when the body is an answer, 1 when it is a FAIL (`\"state\":\"FAIL\"`: no such table,
no open bill, a mirror that cannot be read; the body is printed all the same), 2 on an error.

OPTIONS:
    --table N   getBill: the table number
    --bill ID   getBill: the bill id
";

/// The body on stdout (exact bytes; a newline only for a terminal), the signature header on
/// stderr.
fn main(parser: &mut lexopt::Parser, mut common: super::Common) -> anyhow::Result<ExitCode> {
    use lexopt::prelude::*;
    use std::io::Write;
    let (mut operation, mut table, mut bill) = (None, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("table") => table = Some(parser.value()?.string()?),
            Long("bill") => bill = Some(parser.value()?.string()?),
            Value(v) if operation.is_none() => operation = Some(v.string()?),
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    let Some(operation) = operation else {
        return Err(super::usage_error("preview needs an OPERATION", USAGE));
    };
    let cfg = common.load_config(crate::config::SecretNeed::Required)?;
    let op = read_op(&operation)?;
    let frame = request_frame(op, table.as_deref(), bill.as_deref())?;
    let signed = answer(&cfg, op, &frame)?;
    let mut out = std::io::stdout().lock();
    out.write_all(signed.body())?;
    if std::io::IsTerminal::is_terminal(&out) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("signature: {}", signed.signature());
    Ok(if is_fail(signed.body()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether `body` is a FAIL answer (`"state":"FAIL"` at its top level).
pub fn is_fail(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct State<'a> {
        #[serde(borrow)]
        state: Option<&'a str>,
    }
    serde_json::from_slice::<State<'_>>(body).is_ok_and(|s| s.state == Some("FAIL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_operations_are_previewed() {
        assert_eq!(read_op("getbill").unwrap(), Op::GetBill);
        assert!(matches!(read_op("payBill"), Err(PreviewError::NotRead(_))));
        assert!(matches!(read_op("nope"), Err(PreviewError::Unknown(_))));
    }

    #[test]
    fn frames_carry_the_preview_rid_and_the_target() {
        let f = request_frame(Op::GetBill, Some("12"), None).unwrap();
        assert_eq!(
            f,
            br#"{"rID":"preview","operation":"getBill","tableNumber":"12"}"#
        );
        assert!(request_frame(Op::GetBill, None, None).is_err());
        assert!(request_frame(Op::TablesInfo, Some("1"), None).is_err());
    }
}
