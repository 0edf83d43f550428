# NixOS VM test of nix/module.nix, for a machine with nixpkgs and KVM:
#
#   nix-build nix/tests/vm-test.nix                                   # <nixpkgs> from NIX_PATH
#   nix-build nix/tests/vm-test.nix --arg pkgs 'import /path/to/nixpkgs { }'
#   nix-build nix/tests/vm-test.nix -A driverInteractive && ./result/bin/nixos-test-driver
#
# It builds hv from this checkout, so nix/package.nix's npmDepsHash must match package-lock.json.
# The VM has no network: the check hv-daemon makes at start (catch-up, no check has ever
# succeeded) fails, and the daemon must keep running regardless.
{ pkgs ? import <nixpkgs> { } }:
pkgs.testers.runNixOSTest {
  name = "hv-update-checker";

  nodes.machine = { ... }: {
    imports = [ ../module.nix ];
    networking.hostName = "hv01";
    hypervisor.updateChecker = {
      enable = true;
      schedule = "Mon *-*-* 02:00:00";
      randomizedDelaySec = 0;
      # No libvirtd in this VM.
      healthChecks.services = [ ];
    };
    users.users.root.password = "hv-test";
  };

  testScript = ''
    import json

    machine.wait_for_unit("multi-user.target")

    with subtest("hv-daemon runs with the rendered configuration"):
        machine.wait_for_unit("hv-daemon.service")
        config = json.loads(machine.succeed("cat /etc/hv/config.json"))
        assert config["schedule"] == "Mon *-*-* 02:00:00", config
        assert config["host"] == "hv01", config
        machine.succeed("systemctl show -p ExecStart hv-daemon | grep -F 'hv daemon'")

    with subtest("the hv commands are on the PATH"):
        for command in ["hv", "hv-check-updates", "hv-upgrade-test", "hv-system-upgrade"]:
            machine.succeed(f"command -v {command}")

    with subtest("hv status --json answers"):
        machine.succeed(
            "mkdir -p /etc/hypervisor && cat > /etc/hypervisor/flake.lock <<'EOF'\n"
            '{"nodes":{"nixpkgs":{"locked":{"lastModified":1700000000,"narHash":"sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",'
            '"owner":"NixOS","repo":"nixpkgs","rev":"0000000000000000000000000000000000000000","type":"github"},'
            '"original":{"owner":"NixOS","ref":"nixos-24.11","repo":"nixpkgs","type":"github"}},'
            '"root":{"inputs":{"nixpkgs":"nixpkgs"}}},"root":"root","version":7}\n'
            "EOF"
        )
        status = json.loads(machine.succeed("hv status --json"))
        assert "status" in status, status

    with subtest("a reload keeps the daemon running"):
        machine.succeed("systemctl reload hv-daemon")
        machine.sleep(2)
        machine.succeed("systemctl is-active hv-daemon")

    with subtest("login shows the notices in /etc/motd.d"):
        machine.succeed("test -d /etc/motd.d")
        machine.succeed("grep -F 'motd_dir=/etc/motd.d' /etc/pam.d/login")
        machine.succeed("echo 'hv-vm-test: NixOS update available' > /etc/motd.d/zz-hv-vm-test")
        machine.wait_until_tty_matches("1", "login: ")
        machine.send_chars("root\n")
        machine.wait_until_tty_matches("1", "Password: ")
        machine.send_chars("hv-test\n")
        machine.wait_until_tty_matches("1", "hv-vm-test: NixOS update available")
  '';
}
