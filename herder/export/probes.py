"""herder's http and tcp checks as commands that run where the target runs them.

Compose and Swarm run a healthcheck *inside the container*; systemd runs ExecStartPost on
the host; a Kubernetes init container waits from another pod, asking the API server
(WAIT). None of them can call herder's own probe code, so each check becomes a short
Python program passed with `python3 -c` (the same semantics as herder's: an http check passes on 2xx/3xx, with
`body` also matching; a tcp check passes when the connection opens). Python because
every image and host that runs herder's programs is likely to have it, and curl/wget are
not; the report says "needs python3" wherever one is used. The programs take their
values as arguments, never spliced into the code, so no quoting can break them.
"""

from __future__ import annotations

from herder.config.model import Health, Ready

#: One http attempt: argv[1] URL, argv[2] body regex ("" = none), argv[3] timeout (s).
HTTP_ONCE = (
    "import re,sys,urllib.request as u\n"
    "try:\n"
    " b=u.urlopen(sys.argv[1],timeout=float(sys.argv[3])).read(65536).decode('utf-8','replace')\n"
    "except Exception as e:\n"
    " sys.exit(f'not ready: {e}')\n"
    "sys.exit(0 if not sys.argv[2] or re.search(sys.argv[2],b) else 'body does not match')"
)

#: One tcp attempt: argv[1] host:port, argv[2] timeout (s).
TCP_ONCE = (
    "import socket,sys\n"
    "h,_,p=sys.argv[1].rpartition(':')\n"
    "try:\n"
    " socket.create_connection((h.strip('[]'),int(p)),float(sys.argv[2])).close()\n"
    "except OSError as e:\n"
    " sys.exit(f'not ready: {e}')"
)

#: Poll until one check passes (systemd ExecStartPost; the unit's TimeoutStartSec bounds it).
#: argv: KIND INTERVAL ATTEMPT_TIMEOUT ARGS… with KIND http (URL BODY), tcp (HOST:PORT),
#: exec (ARGV…) or log (REGEX: a line of this unit's journal since its start).
POLL = (
    "import os,re,socket,subprocess as sp,sys,time,urllib.request as u\n"
    "k,i,t,a=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]),sys.argv[4:]\n"
    "def ok():\n"
    " try:\n"
    "  if k=='http':\n"
    "   b=u.urlopen(a[0],timeout=t).read(65536).decode('utf-8','replace')\n"
    "   return not a[1] or re.search(a[1],b) is not None\n"
    "  if k=='tcp':\n"
    "   h,_,p=a[0].rpartition(':');socket.create_connection((h.strip('[]'),int(p)),t).close();return True\n"
    "  if k=='exec':\n"
    "   return sp.run(a,timeout=t,stdin=sp.DEVNULL).returncode==0\n"
    "  o=sp.run(['journalctl','-q','-o','cat','_SYSTEMD_INVOCATION_ID='+os.environ['INVOCATION_ID']],"
    "capture_output=True,text=True,timeout=30).stdout\n"
    "  return any(re.search(a[0],x) for x in o.splitlines())\n"
    " except Exception:\n"
    "  return False\n"
    "while not ok():\n"
    " time.sleep(i)"
)


#: An init container's wait (ConfigMap key wait.py): argv[1] deployment|job, argv[2] name, argv[3] condition.
WAIT = (
    "import json,os,ssl,sys,time,urllib.request as u\n"
    "k,n,c=sys.argv[1:4]\n"
    "d=os.environ.get('HERDER_SA_DIR','/var/run/secrets/kubernetes.io/serviceaccount')\n"
    "ns=open(d+'/namespace').read().strip()\n"
    "h=os.environ['KUBERNETES_SERVICE_HOST'];h='['+h+']' if ':' in h else h\n"
    "api='https://%s:%s'%(h,os.environ['KUBERNETES_SERVICE_PORT'])\n"
    "p=('/apis/batch/v1/namespaces/%s/jobs/%s' if k=='job' else '/apis/apps/v1/namespaces/%s/deployments/%s')%(ns,n)\n"
    "ctx=ssl.create_default_context(cafile=d+'/ca.crt')\n"
    "while True:\n"
    " try:\n"
    "  r=u.Request(api+p,headers={'Authorization':'Bearer '+open(d+'/token').read().strip()})\n"
    "  o=json.load(u.urlopen(r,context=ctx,timeout=10));s=o.get('status') or {}\n"
    "  sp=o.get('spec') or {}\n"
    "  if k=='job':\n"
    "   f={x.get('type'):x.get('status') for x in s.get('conditions') or []}\n"
    "   if f.get('Failed')=='True':sys.exit('%s failed: %s will not start'%(n,os.environ.get('HOSTNAME','')))\n"
    "   want=max(1,sp.get('parallelism',1))\n"
    "   if f.get('Complete')=='True' or c=='started' and s.get('active',0)>=1 or c in('ready','healthy') and "
    "s.get('ready',0)>=want:break\n"
    "  else:\n"
    "   want=max(1,sp.get('replicas',1))\n"
    "   if (s.get('replicas',0) if c=='started' else s.get('readyReplicas',0))>=want:break\n"
    "  print('waiting for %s (%s)'%(n,c),flush=True)\n"
    " except (OSError,ValueError) as e:\n"
    "  print('waiting for %s (%s): %s'%(n,c,e),flush=True)\n"
    " time.sleep(2)"
)


def seconds_arg(value: float) -> str:
    return f"{value:g}"


def once(kind: str, conf: Ready | Health, attempt_timeout: float) -> tuple[str, ...] | None:
    """One attempt of an http/tcp/exec check as an argv that runs inside the service's image."""
    if kind == "http":
        body = conf.body if isinstance(conf, Health) else None
        return ("python3", "-c", HTTP_ONCE, str(conf.http), body or "", seconds_arg(attempt_timeout))
    if kind == "tcp":
        return ("python3", "-c", TCP_ONCE, str(conf.tcp), seconds_arg(attempt_timeout))
    if kind == "exec":
        return tuple(conf.exec or ())
    return None


def poll(ready: Ready) -> tuple[str, ...] | None:
    """The readiness check as a host command that returns once it passes (systemd)."""
    kind = ready.kind
    if kind is None or kind == "notify":
        return None
    head = ("python3", "-c", POLL, kind, seconds_arg(ready.interval), seconds_arg(ready.attempt_timeout))
    if kind == "http":
        return (*head, str(ready.http), "")
    if kind == "tcp":
        return (*head, str(ready.tcp))
    if kind == "exec":
        return (*head, *(ready.exec or ()))
    return (*head, str(ready.log))
