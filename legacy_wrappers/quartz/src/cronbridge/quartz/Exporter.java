package cronbridge.quartz;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.List;

import org.quartz.CalendarIntervalTrigger;
import org.quartz.CronTrigger;
import org.quartz.DailyTimeIntervalTrigger;
import org.quartz.JobDataMap;
import org.quartz.JobDetail;
import org.quartz.JobKey;
import org.quartz.Scheduler;
import org.quartz.SchedulerException;
import org.quartz.SimpleTrigger;
import org.quartz.Trigger;
import org.quartz.TriggerKey;
import org.quartz.impl.matchers.GroupMatcher;

/**
 * Writes a live scheduler's definitions (whatever its JobStore: RAM, JDBC, clustered) as the
 * JSON document {@code bridge import quartz --export FILE} reads (format documented in
 * crontab_import/quartz/export.py). Only the public Scheduler API is used; the file is replaced
 * atomically (written next to it, then renamed).
 */
final class Exporter {
    static final String FORMAT = "cron-bridge-quartz-export";
    private static final List<String> TEXT_CLASSES = java.util.Arrays.asList(
            "java.lang.String", "java.lang.Integer", "java.lang.Long", "java.lang.Short",
            "java.lang.Byte", "java.lang.Boolean", "java.lang.Character");

    private Exporter() {
    }

    static void write(Scheduler s, Path file) throws SchedulerException, IOException {
        String doc = export(s);
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + file.getFileName(), ".tmp");
        try {
            try (Writer w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
                w.write(doc);
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    static String export(Scheduler s) throws SchedulerException {
        StringBuilder out = new StringBuilder(4096);
        out.append("{\"format\":");
        Json.quote(out, FORMAT);
        out.append(",\"version\":1,\"scheduler\":");
        Json.quote(out, s.getSchedulerName());
        out.append(",\"exported_at\":");
        Json.quote(out, Instant.now().toString());
        out.append(",\n\"jobs\":[");
        List<JobKey> jobs = new ArrayList<>();
        for (String group : sorted(s.getJobGroupNames())) {
            List<JobKey> keys = new ArrayList<>(s.getJobKeys(GroupMatcher.jobGroupEquals(group)));
            keys.sort((a, b) -> a.getName().compareTo(b.getName()));
            jobs.addAll(keys);
        }
        String sep = "";
        List<Trigger> triggers = new ArrayList<>();
        for (JobKey key : jobs) {
            JobDetail job = s.getJobDetail(key);
            if (job == null) {
                continue;  // deleted meanwhile
            }
            out.append(sep).append('\n');
            sep = ",";
            job(out, job);
            triggers.addAll(s.getTriggersOfJob(key));
        }
        out.append("],\n\"triggers\":[");
        sep = "";
        for (Trigger t : triggers) {
            Trigger.TriggerState state = s.getTriggerState(t.getKey());
            if (state == Trigger.TriggerState.NONE) {
                continue;  // deleted meanwhile
            }
            out.append(sep).append('\n');
            sep = ",";
            trigger(out, t, state);
        }
        out.append("],\n\"calendars\":");
        strings(out, sorted(s.getCalendarNames()));
        out.append(",\n\"paused_groups\":");
        strings(out, sorted(s.getPausedTriggerGroups()));
        out.append("}\n");
        return out.toString();
    }

    private static void job(StringBuilder out, JobDetail job) {
        out.append('{');
        field(out, "name", job.getKey().getName());
        field(out, "group", job.getKey().getGroup());
        field(out, "class", job.getJobClass() == null ? null : job.getJobClass().getName());
        field(out, "description", job.getDescription());
        raw(out, "durable", String.valueOf(job.isDurable()));
        raw(out, "recover", String.valueOf(job.requestsRecovery()));
        raw(out, "nonconcurrent", String.valueOf(job.isConcurrentExectionDisallowed()));
        raw(out, "persist_data", String.valueOf(job.isPersistJobDataAfterExecution()));
        out.append("\"data\":");
        data(out, job.getJobDataMap());
        out.append('}');
    }

    private static void trigger(StringBuilder out, Trigger t, Trigger.TriggerState state) {
        TriggerKey key = t.getKey();
        out.append('{');
        field(out, "name", key.getName());
        field(out, "group", key.getGroup());
        field(out, "job_name", t.getJobKey().getName());
        field(out, "job_group", t.getJobKey().getGroup());
        field(out, "state", stateName(state));
        time(out, "start_ms", t.getStartTime());
        time(out, "end_ms", t.getEndTime());
        time(out, "next_fire_ms", t.getNextFireTime());
        time(out, "prev_fire_ms", t.getPreviousFireTime());
        raw(out, "priority", String.valueOf(t.getPriority()));
        raw(out, "misfire", String.valueOf(t.getMisfireInstruction()));
        field(out, "description", t.getDescription());
        field(out, "calendar", t.getCalendarName());
        if (t instanceof CronTrigger) {
            CronTrigger c = (CronTrigger) t;
            field(out, "type", "CRON");
            field(out, "cron_expression", c.getCronExpression());
            field(out, "time_zone", c.getTimeZone() == null ? null : c.getTimeZone().getID());
        } else if (t instanceof SimpleTrigger) {
            SimpleTrigger st = (SimpleTrigger) t;
            field(out, "type", "SIMPLE");
            raw(out, "repeat_count", String.valueOf(st.getRepeatCount()));
            raw(out, "repeat_interval", String.valueOf(st.getRepeatInterval()));
            raw(out, "times_triggered", String.valueOf(st.getTimesTriggered()));
        } else if (t instanceof CalendarIntervalTrigger) {
            CalendarIntervalTrigger ci = (CalendarIntervalTrigger) t;
            field(out, "type", "CAL_INT");
            raw(out, "repeat_interval", String.valueOf(ci.getRepeatInterval()));
            field(out, "interval_unit", ci.getRepeatIntervalUnit().name());
            field(out, "time_zone", ci.getTimeZone() == null ? null : ci.getTimeZone().getID());
            raw(out, "preserve_hour", String.valueOf(ci.isPreserveHourOfDayAcrossDaylightSavings()));
            raw(out, "skip_day", String.valueOf(ci.isSkipDayIfHourDoesNotExist()));
            raw(out, "times_triggered", String.valueOf(ci.getTimesTriggered()));
        } else if (t instanceof DailyTimeIntervalTrigger) {
            field(out, "type", "DAILY_I");
        } else {
            field(out, "type", "BLOB");  // what a JDBC store would make of a custom trigger class
        }
        out.append("\"data\":");
        data(out, t.getJobDataMap());
        out.append('}');
    }

    /** The JDBC store's TRIGGER_STATE for the API's state (NORMAL covers WAITING/ACQUIRED). */
    static String stateName(Trigger.TriggerState state) {
        switch (state) {
            case NORMAL: return "WAITING";
            case PAUSED: return "PAUSED";
            case BLOCKED: return "BLOCKED";
            case COMPLETE: return "COMPLETE";
            case ERROR: return "ERROR";
            default: return state.name();
        }
    }

    private static void data(StringBuilder out, JobDataMap map) {
        out.append('{');
        String sep = "";
        List<String> keys = new ArrayList<>(map.getKeys().length);
        Collections.addAll(keys, map.getKeys());
        Collections.sort(keys);
        for (String k : keys) {
            Object v = map.get(k);
            out.append(sep);
            sep = ",";
            Json.quote(out, k);
            out.append(':');
            if (v == null) {
                out.append("null");
                continue;
            }
            String cls = v.getClass().getName();
            out.append("{\"class\":");
            Json.quote(out, cls);
            if (TEXT_CLASSES.contains(cls)) {
                out.append(",\"text\":");
                Json.quote(out, String.valueOf(v));
            }
            out.append('}');
        }
        out.append('}');
    }

    private static void field(StringBuilder out, String key, String value) {
        Json.quote(out, key);
        out.append(':');
        if (value == null) {
            out.append("null");
        } else {
            Json.quote(out, value);
        }
        out.append(',');
    }

    private static void raw(StringBuilder out, String key, String value) {
        Json.quote(out, key);
        out.append(':').append(value).append(',');
    }

    private static void time(StringBuilder out, String key, Date value) {
        raw(out, key, value == null ? "null" : String.valueOf(value.getTime()));
    }

    private static void strings(StringBuilder out, List<String> values) {
        out.append('[');
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            Json.quote(out, values.get(i));
        }
        out.append(']');
    }

    private static List<String> sorted(java.util.Collection<String> values) {
        List<String> out = new ArrayList<>(values);
        Collections.sort(out);
        return out;
    }
}
