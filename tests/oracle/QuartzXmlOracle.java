import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

import org.quartz.CalendarIntervalTrigger;
import org.quartz.CronTrigger;
import org.quartz.JobDetail;
import org.quartz.JobKey;
import org.quartz.Scheduler;
import org.quartz.SimpleTrigger;
import org.quartz.Trigger;
import org.quartz.impl.StdSchedulerFactory;
import org.quartz.impl.matchers.GroupMatcher;
import org.quartz.simpl.CascadingClassLoadHelper;
import org.quartz.spi.ClassLoadHelper;
import org.quartz.xml.ValidationException;
import org.quartz.xml.XMLSchedulingDataProcessor;
import org.xml.sax.InputSource;
import org.xml.sax.SAXParseException;

/**
 * Test oracle: loads one job_scheduling_data XML file with Quartz's own
 * XMLSchedulingDataProcessor into a RAMJobStore scheduler that is never started, and prints
 * what Quartz scheduled as one JSON object on stdout.
 *
 * Usage: java QuartzXmlOracle FILE [SCHEMA_RESOURCE]
 * SCHEMA_RESOURCE (optional) replaces the 2.0 schema the processor validates against, e.g.
 * org/quartz/xml/job_scheduling_data_1_8.xsd to see how the 2.3.2 code reads a 1.8 file.
 *
 * Output: {"ok": true, "load_millis": N, "jobs": [...], "triggers": [...]} or
 * {"ok": false, "error": "...", "validation": [{"line": N, "message": "..."}]}.
 */
public final class QuartzXmlOracle {

    private static String schemaResource = null;

    /** Every SAX problem the processor saw (ValidationException loses them in 2.3.2). */
    private static final List<Exception> problems = new ArrayList<Exception>();

    /** The stock processor, optionally validating against another schema from the jar. */
    static final class Processor extends XMLSchedulingDataProcessor {
        Processor(ClassLoadHelper clh) throws Exception {
            super(clh);
        }

        @Override
        protected Object resolveSchemaSource() {
            if (schemaResource == null) {
                return super.resolveSchemaSource();
            }
            InputStream is = classLoadHelper.getResourceAsStream(schemaResource);
            InputSource source = new InputSource(is);
            source.setSystemId("http://www.quartz-scheduler.org/xml/" + schemaResource);
            return source;
        }

        @Override
        protected void addValidationException(org.xml.sax.SAXException e) {
            problems.add(e);
            super.addValidationException(e);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 1) {
            schemaResource = args[1];
        }
        Properties props = new Properties();
        props.setProperty("org.quartz.scheduler.instanceName", "oracle");
        props.setProperty("org.quartz.scheduler.skipUpdateCheck", "true");
        props.setProperty("org.quartz.threadPool.class", "org.quartz.simpl.SimpleThreadPool");
        props.setProperty("org.quartz.threadPool.threadCount", "1");
        props.setProperty("org.quartz.jobStore.class", "org.quartz.simpl.RAMJobStore");
        Scheduler scheduler = new StdSchedulerFactory(props).getScheduler();
        StringBuilder out = new StringBuilder();
        try {
            ClassLoadHelper clh = new CascadingClassLoadHelper();
            clh.initialize();
            Processor processor = new Processor(clh);
            long loadMillis = System.currentTimeMillis();
            processor.processFileAndScheduleJobs(args[0], scheduler);
            out.append("{\"ok\":true,\"load_millis\":").append(loadMillis);
            out.append(",\"jobs\":").append(jobs(scheduler));
            out.append(",\"triggers\":").append(triggers(scheduler)).append("}");
        } catch (ValidationException e) {
            out.append("{\"ok\":false,\"error\":").append(str(e.getMessage()));
            out.append(",\"validation\":[");
            String sep = "";
            for (Object o : problems) {
                out.append(sep).append("{\"line\":");
                if (o instanceof SAXParseException) {
                    out.append(((SAXParseException) o).getLineNumber());
                } else {
                    out.append("null");
                }
                out.append(",\"message\":").append(str(((Exception) o).getMessage())).append("}");
                sep = ",";
            }
            out.append("]}");
        } catch (SAXParseException e) {
            out.append("{\"ok\":false,\"error\":").append(str(e.getClass().getName() + ": " + e.getMessage()));
            out.append(",\"validation\":[{\"line\":").append(e.getLineNumber());
            out.append(",\"message\":").append(str(e.getMessage())).append("}]}");
        } catch (Exception e) {
            out.append("{\"ok\":false,\"error\":").append(str(e.getClass().getName() + ": " + e.getMessage()));
            out.append(",\"validation\":[]}");
        } finally {
            scheduler.shutdown();
        }
        System.out.println(out);
        System.exit(0);
    }

    private static String jobs(Scheduler s) throws Exception {
        List<String> items = new ArrayList<String>();
        for (String group : sorted(s.getJobGroupNames())) {
            for (JobKey key : s.getJobKeys(GroupMatcher.jobGroupEquals(group))) {
                JobDetail d = s.getJobDetail(key);
                StringBuilder b = new StringBuilder("{");
                b.append("\"group\":").append(str(key.getGroup()));
                b.append(",\"name\":").append(str(key.getName()));
                b.append(",\"class\":").append(str(d.getJobClass().getName()));
                b.append(",\"description\":").append(str(d.getDescription()));
                b.append(",\"durable\":").append(d.isDurable());
                b.append(",\"recover\":").append(d.requestsRecovery());
                b.append(",\"data\":").append(map(d.getJobDataMap().getWrappedMap()));
                items.add(b.append("}").toString());
            }
        }
        Collections.sort(items);
        return "[" + String.join(",", items) + "]";
    }

    private static String triggers(Scheduler s) throws Exception {
        List<String> items = new ArrayList<String>();
        for (String group : sorted(s.getTriggerGroupNames())) {
            for (org.quartz.TriggerKey key : s.getTriggerKeys(GroupMatcher.triggerGroupEquals(group))) {
                items.add(trigger(s.getTrigger(key)));
            }
        }
        Collections.sort(items);
        return "[" + String.join(",", items) + "]";
    }

    private static String trigger(Trigger t) {
        StringBuilder b = new StringBuilder("{");
        b.append("\"group\":").append(str(t.getKey().getGroup()));
        b.append(",\"name\":").append(str(t.getKey().getName()));
        b.append(",\"job_group\":").append(str(t.getJobKey().getGroup()));
        b.append(",\"job_name\":").append(str(t.getJobKey().getName()));
        b.append(",\"description\":").append(str(t.getDescription()));
        b.append(",\"priority\":").append(t.getPriority());
        b.append(",\"calendar\":").append(str(t.getCalendarName()));
        b.append(",\"misfire\":").append(t.getMisfireInstruction());
        b.append(",\"start_millis\":").append(t.getStartTime() == null ? "null" : String.valueOf(t.getStartTime().getTime()));
        b.append(",\"end_millis\":").append(t.getEndTime() == null ? "null" : String.valueOf(t.getEndTime().getTime()));
        b.append(",\"data\":").append(map(t.getJobDataMap().getWrappedMap()));
        if (t instanceof CronTrigger) {
            CronTrigger c = (CronTrigger) t;
            b.append(",\"type\":\"cron\",\"expression\":").append(str(c.getCronExpression()));
            b.append(",\"time_zone\":").append(str(c.getTimeZone().getID()));
            b.append(",\"tz_offset_millis\":").append(c.getTimeZone().getRawOffset());
        } else if (t instanceof SimpleTrigger) {
            SimpleTrigger st = (SimpleTrigger) t;
            b.append(",\"type\":\"simple\",\"repeat_count\":").append(st.getRepeatCount());
            b.append(",\"repeat_interval\":").append(st.getRepeatInterval());
        } else if (t instanceof CalendarIntervalTrigger) {
            CalendarIntervalTrigger ci = (CalendarIntervalTrigger) t;
            b.append(",\"type\":\"calendar-interval\",\"repeat_interval\":").append(ci.getRepeatInterval());
            b.append(",\"repeat_interval_unit\":").append(str(ci.getRepeatIntervalUnit().name()));
            b.append(",\"time_zone\":").append(str(ci.getTimeZone() == null ? null : ci.getTimeZone().getID()));
        } else {
            b.append(",\"type\":").append(str(t.getClass().getName()));
        }
        b.append(",\"next_fire_millis\":");
        b.append(t.getNextFireTime() == null ? "null" : String.valueOf(t.getNextFireTime().getTime()));
        return b.append("}").toString();
    }

    private static List<String> sorted(List<String> names) {
        List<String> copy = new ArrayList<String>(names);
        Collections.sort(copy);
        return copy;
    }

    private static String map(Map<String, Object> m) {
        StringBuilder b = new StringBuilder("{");
        String sep = "";
        for (Map.Entry<String, Object> e : new TreeMap<String, Object>(nullSafe(m)).entrySet()) {
            b.append(sep).append(str(e.getKey())).append(":");
            b.append(e.getValue() == null ? "null" : str(String.valueOf(e.getValue())));
            sep = ",";
        }
        return b.append("}").toString();
    }

    private static Map<String, Object> nullSafe(Map<String, Object> m) {
        Map<String, Object> copy = new TreeMap<String, Object>();
        for (Map.Entry<String, Object> e : m.entrySet()) {
            copy.put(e.getKey() == null ? "<null>" : e.getKey(), e.getValue());
        }
        return copy;
    }

    private static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append("\"").toString();
    }
}
