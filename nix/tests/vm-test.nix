# NixOS VM test of nix/module.nix, for a machine with nixpkgs and KVM:
#
#   nix-build nix/tests/vm-test.nix                                   # <nixpkgs> from NIX_PATH
#   nix-build nix/tests/vm-test.nix --arg pkgs 'import /path/to/nixpkgs { }'
#   nix-build nix/tests/vm-test.nix -A driverInteractive && ./result/bin/nixos-test-driver
#
# It builds hv from this checkout (nix/package.nix; the npm packages come from package-lock.json's
# URLs and hashes, so the build machine needs network access). The VMs have no network: the check hv-daemon makes at start (catch-up, no check has ever
# succeeded) fails, and the daemon must keep running regardless.
{ pkgs ? import <nixpkgs> { } }:
pkgs.testers.runNixOSTest {
  name = "hv-update-checker";

  nodes.machine = { ... }: {
    imports = [ ../module.nix ];
    networking.hostName = "hv01";
    hypervisor.updateChecker = {
      enable = true;
      host = "hv01";
      schedule = "Mon *-*-* 02:00:00";
      randomizedDelaySec = 0;
      # No libvirtd in this VM.
      healthChecks.services = [ ];
      # A chat channel, so that the chat process gets its service (hv-chat). There is no network:
      # it cannot reach Discord; the test checks how it runs, not what it does.
      notify.channels = [
        { type = "motd"; }
        {
          type = "discord"; tokenFile = "/etc/hv-vm-test/discord-token";
          applicationId = "111"; guildId = "222"; channelId = "333";
          apiUrl = "http://127.0.0.1:9/api";
        }
      ];
    };
    # A stand-in token (a real one comes from agenix or sops-nix, readable by root only).
    environment.etc."hv-vm-test/discord-token" = { text = "not-a-token"; mode = "0400"; };
    users.users.root.password = "hv-test";
  };

  # Manual mode: the commands and the configuration, no daemon.
  nodes.manual = { ... }: {
    imports = [ ../module.nix ];
    hypervisor.updateChecker = {
      enable = false;
      commandName = "hv";
      healthChecks.services = [ ];
    };
  };

  testScript = ''
    import json

    start_all()
    machine.wait_for_unit("multi-user.target")
    manual.wait_for_unit("multi-user.target")

    with subtest("hv-daemon runs with the rendered configuration"):
        machine.wait_for_unit("hv-daemon.service")
        config = json.loads(machine.succeed("cat /etc/hv/config.json"))
        assert config["schedule"] == "Mon *-*-* 02:00:00", config
        assert config["host"] == "hv01", config
        machine.succeed("systemctl show -p ExecStart hv-daemon | grep -F 'hv daemon'")

    with subtest("privilege separation: hv-chat runs unprivileged and sandboxed, hv-daemon listens on no port"):
        machine.succeed("id hv-chat")
        machine.succeed("systemctl show -p User --value hv-chat | grep -qx hv-chat")
        machine.succeed("systemctl show -p ProtectSystem --value hv-chat | grep -qx strict")
        machine.succeed("systemctl show -p LoadCredential --value hv-chat | grep -F discord.tokenFile")
        machine.fail("systemctl show -p LoadCredential --value hv-daemon | grep -F discord")
        machine.succeed("test \"$(stat -c %a /run/hypervisor)\" = 750")
        # The token file stays root's; only systemd hands a copy to hv-chat.
        machine.fail("su -s /bin/sh hv-chat -c 'cat /etc/hv-vm-test/discord-token'")
        pid = machine.succeed("systemctl show -p MainPID --value hv-daemon").strip()
        machine.fail(f"ss -Hltnup | grep -F 'pid={pid},'")

    with subtest("the hv commands are on the PATH, the main one as hvu (commandName)"):
        for command in ["hvu", "hv-check-updates", "hv-upgrade-test", "hv-system-upgrade"]:
            machine.succeed(f"command -v {command}")
        machine.fail("command -v hv")
        machine.succeed("hvu schedule next --json")

    with subtest("manual mode: commands and configuration, no daemon and no timer"):
        for command in ["hv", "hv-check-updates", "hv-upgrade-test", "hv-system-upgrade"]:
            manual.succeed(f"command -v {command}")
        manual.succeed("test -f /etc/hv/config.json")
        manual.fail("systemctl cat hv-daemon.service")
        manual.fail("systemctl list-timers --all | grep -F hv")
        manual.succeed("hv schedule next --json")

    # A host flake's lock (the nixos-24.11 node of this repository's flake.lock); nothing fetches it.
    with subtest("hv status --json answers"):
        machine.succeed(
            "mkdir -p /etc/hypervisor && cat > /etc/hypervisor/flake.lock <<'EOF'\n"
            '{"nodes":{"nixpkgs":{"locked":{"lastModified":1751274312,"narHash":"sha256-/bVBlRpECLVzjV19t5KMdMFWSwKLtb5RyXdjz3LJT+g=",'
            '"owner":"NixOS","repo":"nixpkgs","rev":"50ab793786d9de88ee30ec4e4c24fb4236fc2674","type":"github"},'
            '"original":{"owner":"NixOS","ref":"nixos-24.11","repo":"nixpkgs","type":"github"}},'
            '"root":{"inputs":{"nixpkgs":"nixpkgs"}}},"root":"root","version":7}\n'
            "EOF"
        )
        status = json.loads(machine.succeed("hvu status --json"))
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
