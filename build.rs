//! `sqlx::migrate!` embeds `migrations/` at compile time; without this, editing a
//! migration would not rebuild the binary and the old schema would ship.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
