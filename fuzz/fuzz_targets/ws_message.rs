//! The router's graphql-transport-ws frame handling without a socket:
//! reading a client's text frame, the token of a `connection_init`
//! payload (a non-ASCII token once panicked here), and for `subscribe` the
//! preparation of the operation it carries. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shopgraph_router::subscriptions::ws::fuzzing::{Frame, read_frame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read_frame(text) {
        Ok(Frame::Subscribe(_, request)) => {
            if let Some(query) = request.query.as_deref() {
                let _ = shopgraph_fuzz::planner().prepare(query, request.operation_name.as_deref());
            }
        }
        Ok(Frame::Init(_) | Frame::Other) => {}
        Err(err) => {
            // The close reason is built from the message: it must render.
            let _ = err.to_string();
        }
    }
});
