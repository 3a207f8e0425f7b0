# frozen_string_literal: true

desc 'Checks the Rust code with rustfmt and clippy'
task :lint do
  sh 'cargo fmt --all -- --check'
  sh 'cargo clippy --release --all-targets -- -D warnings'
end
