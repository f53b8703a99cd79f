// The migrations are embedded at build time; a new or changed file must rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/base");
    println!("cargo:rerun-if-changed=../../migrations/todos");
}
