//! Exposes the Ruby version as cfgs (`ruby_gte_3_3`, ...) for the few places where the
//! behaviour of core Ruby differs between versions.
fn main() {
    let _ = rb_sys_env::activate();
}
