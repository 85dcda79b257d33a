//! Rebuilds the crate when the GraphiQL bundle changes: `rust-embed`
//! embeds each file with `include_bytes!`, which tracks the files it
//! found, but a new build names new (content-hashed) files.

fn main() {
    println!("cargo:rerun-if-changed=../../web-demo/graphiql/dist");
}
