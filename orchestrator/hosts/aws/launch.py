"""What a launch sends: RunInstances' arguments and the instance's user data (its dead-man
switch). One builder, used by the real launches and by pre-flight's DryRun alike, so an
organisation policy (required tags, IMDSv2, no public addresses, ...) refuses the run
before anything exists, not after."""

from __future__ import annotations

from typing import Any

from orchestrator.hosts.aws.ec2 import tag_spec


def run_args(aws: Any, *, role: str, image: str, instance_type: str, count: int, subnet_id: str,
             tags: dict[str, str], base: str, expires: str, key_name: str | None = None,
             sg_id: str | None = None, group: str = "", token: str | None = None) -> dict[str, Any]:
    """run_instances' arguments for `count` instances of `role` (tagged with it). Pre-flight
    passes no key, security group or placement group (they do not exist yet) and no token."""
    nic: dict[str, Any] = {"DeviceIndex": 0, "DeleteOnTermination": True, "SubnetId": subnet_id}
    if sg_id:
        nic["Groups"] = [sg_id]
    if aws.ssh_address == "public":
        nic["AssociatePublicIpAddress"] = True
    role_tags = {**tags, "Name": f"{base}-{role}", "orchestrate:role": role}
    return dict(ImageId=image, InstanceType=instance_type, MinCount=count, MaxCount=count,
                **({"KeyName": key_name} if key_name else {}),
                **({"Placement": {"GroupName": group}} if group else {}),
                NetworkInterfaces=[nic],
                InstanceInitiatedShutdownBehavior="terminate", UserData=user_data(expires),
                MetadataOptions={"HttpTokens": "required"},
                TagSpecifications=tag_spec("instance", role_tags) + tag_spec("volume", role_tags),
                **({"ClientToken": token} if token else {}))


def user_data(expires: str) -> str:
    """The instance's own dead-man switch: power off (= terminate, see run_instances) at the run's
    absolute expiry `expires` (ISO UTC), the same for every instance of the run, auto-scaled ones
    too. A systemd timer survives a reboot (Persistent: one whose time passed while it was down
    fires at boot); without systemd, a sleep until then. $ORCHESTRATE_ROOT (tests only) writes the
    units under another root and arms nothing."""
    at = expires.replace("T", " ").removesuffix("Z") + " UTC"
    return f"""#!/bin/sh
# orchestrate: power off at the run's expiry ({expires}), also after a reboot
root="${{ORCHESTRATE_ROOT:-}}"
units="$root/etc/systemd/system"
if [ -n "$root" ] || [ -d /run/systemd/system ]; then
  mkdir -p "$units"
  cat > "$units/orchestrate-expire.timer" <<'UNIT'
[Unit]
Description=orchestrate: power off at the run's expiry
[Timer]
OnCalendar={at}
Persistent=true
AccuracySec=1s
[Install]
WantedBy=timers.target
UNIT
  cat > "$units/orchestrate-expire.service" <<'UNIT'
[Unit]
Description=orchestrate: the run's expiry is reached
[Service]
Type=oneshot
ExecStart=/bin/systemctl poweroff
UNIT
  [ -n "$root" ] && exit 0
  systemctl daemon-reload && systemctl enable --now orchestrate-expire.timer && exit 0
fi
left=$(( $(date -u -d '{at}' +%s) - $(date -u +%s) ))
[ "$left" -gt 0 ] || left=0
(sleep "$left"; poweroff) >/dev/null 2>&1 &
"""
