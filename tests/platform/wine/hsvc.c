/* A minimal Windows service for the Wine tier (copied from shared/tools/platform/feassvc.c).
   Logs to C:\herder-it\svc.log; reports START_PENDING, RUNNING, and STOPPED on SERVICE_CONTROL_STOP. */
#include <windows.h>
#include <stdio.h>

static SERVICE_STATUS_HANDLE g_h;
static SERVICE_STATUS g_st;
static HANDLE g_stop;

static void logmsg(const char *m) {
    FILE *f = fopen("C:\\herder-it\\svc.log", "a");
    if (f) { SYSTEMTIME t; GetLocalTime(&t);
        fprintf(f, "%02d:%02d:%02d.%03d pid=%lu %s\n", t.wHour, t.wMinute, t.wSecond, t.wMilliseconds, GetCurrentProcessId(), m);
        fclose(f); }
}

static void set_state(DWORD s, DWORD exitcode) {
    g_st.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    g_st.dwCurrentState = s;
    g_st.dwControlsAccepted = (s == SERVICE_RUNNING) ? (SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN) : 0;
    g_st.dwWin32ExitCode = exitcode;
    g_st.dwWaitHint = (s == SERVICE_START_PENDING || s == SERVICE_STOP_PENDING) ? 5000 : 0;
    g_st.dwCheckPoint = (s == SERVICE_RUNNING || s == SERVICE_STOPPED) ? 0 : g_st.dwCheckPoint + 1;
    SetServiceStatus(g_h, &g_st);
}

static DWORD WINAPI handler(DWORD ctrl, DWORD type, LPVOID data, LPVOID ctx) {
    char b[64];
    switch (ctrl) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        logmsg(ctrl == SERVICE_CONTROL_STOP ? "control STOP" : "control SHUTDOWN");
        set_state(SERVICE_STOP_PENDING, 0);
        SetEvent(g_stop);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    case 128:
        logmsg("control 128: crashing with exit code 3");
        ExitProcess(3);
    default:
        sprintf(b, "control %lu not implemented", ctrl); logmsg(b);
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv) {
    g_h = RegisterServiceCtrlHandlerExW(L"HerderItSvc", handler, NULL);
    if (!g_h) { logmsg("RegisterServiceCtrlHandlerEx failed"); return; }
    g_stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    set_state(SERVICE_START_PENDING, 0);
    logmsg("starting");
    set_state(SERVICE_RUNNING, 0);
    logmsg("running");
    while (WaitForSingleObject(g_stop, 1000) == WAIT_TIMEOUT) { /* a real service would work here */ }
    logmsg("stopped");
    set_state(SERVICE_STOPPED, 0);
}

int main(int argc, char **argv) {
    SERVICE_TABLE_ENTRYW table[] = { { L"HerderItSvc", service_main }, { NULL, NULL } };
    CreateDirectoryA("C:\\herder-it", NULL);
    logmsg("process start, calling StartServiceCtrlDispatcher");
    if (!StartServiceCtrlDispatcherW(table)) {
        char b[96]; sprintf(b, "StartServiceCtrlDispatcher failed: %lu (not started by SCM?)", GetLastError()); logmsg(b);
        printf("%s\n", b);
        return 1;
    }
    logmsg("dispatcher returned, exiting");
    return 0;
}
