# frozen_string_literal: true

# Writes a Makefile that builds the Rust extension with cargo (plain mkmf: the rb_sys gem is
# not needed). `make` leaves polyphony.so here; `make install` copies it to
# $(sitearchdir)$(target_prefix), as RubyGems and rake-compiler expect.
require 'mkmf'

crate_dir = __dir__
workspace = File.expand_path('../..', crate_dir)
# In a git checkout, share the workspace's target dir with `cargo test`; an installed gem
# builds in a scratch dir that `make install` removes.
checkout = File.directory?(File.join(workspace, '.git'))
target_dir = ENV.fetch('CARGO_TARGET_DIR') { checkout ? File.join(workspace, 'target') : File.expand_path('cargo-target') }
remove_target = checkout || ENV.key?('CARGO_TARGET_DIR') ? '' : "\trm -rf $(TARGET_DIR)\n"
abort 'cargo is required to build polyphony (https://rustup.rs)' unless find_executable('cargo')

dlext = RbConfig::CONFIG['DLEXT']
File.write('Makefile', <<~MAKEFILE)
  CARGO ?= cargo
  RUBY = #{RbConfig.ruby}
  sitearchdir = #{RbConfig::CONFIG['sitearchdir']}
  target_prefix = /polyphony
  DLLIB = polyphony.#{dlext}
  CRATE = #{crate_dir}
  TARGET_DIR = #{target_dir}

  all: $(DLLIB)

  $(DLLIB): FORCE
  \tRUBY=$(RUBY) $(CARGO) build --release --manifest-path $(CRATE)/Cargo.toml --target-dir $(TARGET_DIR)
  \tcp $(TARGET_DIR)/release/libpolyphony.so $(DLLIB)

  install: $(DLLIB)
  \tmkdir -p $(DESTDIR)$(sitearchdir)$(target_prefix)
  \tcp $(DLLIB) $(DESTDIR)$(sitearchdir)$(target_prefix)/$(DLLIB)
  #{remove_target}
  clean:
  \trm -f $(DLLIB)

  distclean: clean
  \trm -f Makefile

  .PHONY: all install clean distclean FORCE
  FORCE:
MAKEFILE
