// A real Quartz 2.3.2 scheduler on a JDBC JobStore (JobStoreTX), for the bridge's JDBC import
// tests. Usage:
//   java QuartzJdbcHarness DRIVER URL USER PASSWORD DELEGATE PREFIX SCHED_NAME USE_PROPERTIES
//        [SPOOL_DIR EXPORT_FILE]
// With the last two (and cron-bridge-quartz.jar on the classpath) the scheduler runs the
// bridge's plugin, which exports the definitions to EXPORT_FILE when the scheduler starts.
// Clears the scheduler SCHED_NAME in the tables, schedules a realistic set of jobs through the
// Quartz API, starts the scheduler (which recovers misfires as at any start-up), puts it in
// standby, prints one line per trigger and shuts it down:
//   T <tab> group.name <tab> state <tab> next fire time ms, then the 5 fire times after it (ms)
import java.io.Serializable;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.*;

import org.quartz.*;
import org.quartz.impl.StdSchedulerFactory;
import org.quartz.impl.calendar.HolidayCalendar;
import org.quartz.impl.matchers.GroupMatcher;
import org.quartz.utils.ConnectionProvider;

import static org.quartz.CalendarIntervalScheduleBuilder.calendarIntervalSchedule;
import static org.quartz.CronScheduleBuilder.cronSchedule;
import static org.quartz.DailyTimeIntervalScheduleBuilder.dailyTimeIntervalSchedule;
import static org.quartz.JobBuilder.newJob;
import static org.quartz.SimpleScheduleBuilder.simpleSchedule;
import static org.quartz.TriggerBuilder.newTrigger;

public class QuartzJdbcHarness {

    /** What every job runs: nothing (the tests only look at schedules). */
    public static class HarnessJob implements Job {
        public void execute(JobExecutionContext context) {}
    }

    /** An application value class: stored in a serialized JobDataMap, unreadable by the bridge. */
    public static class Money implements Serializable {
        private static final long serialVersionUID = 1L;
        public final long cents;
        public final String currency;
        public Money(long cents, String currency) { this.cents = cents; this.currency = currency; }
    }

    /** Plain DriverManager connections: no pool library needed. */
    public static class Provider implements ConnectionProvider {
        private String url, user, password, driver;
        public void setUrl(String v) { url = v; }
        public void setUser(String v) { user = v; }
        public void setPassword(String v) { password = v; }
        public void setDriver(String v) { driver = v; }
        public Connection getConnection() throws SQLException {
            return DriverManager.getConnection(url, user, password);
        }
        public void shutdown() {}
        public void initialize() throws SQLException {
            try { Class.forName(driver); } catch (ClassNotFoundException e) { throw new SQLException(e); }
        }
    }

    static long utc(String iso) { return java.time.Instant.parse(iso).toEpochMilli(); }

    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.setProperty("org.quartz.scheduler.instanceName", a[6]);
        p.setProperty("org.quartz.scheduler.skipUpdateCheck", "true");
        p.setProperty("org.quartz.threadPool.threadCount", "1");
        p.setProperty("org.quartz.jobStore.class", "org.quartz.impl.jdbcjobstore.JobStoreTX");
        p.setProperty("org.quartz.jobStore.driverDelegateClass", a[4]);
        p.setProperty("org.quartz.jobStore.tablePrefix", a[5]);
        p.setProperty("org.quartz.jobStore.useProperties", a[7]);
        p.setProperty("org.quartz.jobStore.dataSource", "ds");
        p.setProperty("org.quartz.dataSource.ds.connectionProvider.class", "QuartzJdbcHarness$Provider");
        p.setProperty("org.quartz.dataSource.ds.driver", a[0]);
        p.setProperty("org.quartz.dataSource.ds.url", a[1]);
        p.setProperty("org.quartz.dataSource.ds.user", a[2]);
        p.setProperty("org.quartz.dataSource.ds.password", a[3]);
        if (a.length > 9) {
            p.setProperty("org.quartz.plugin.bridge.class", "cronbridge.quartz.BridgePlugin");
            p.setProperty("org.quartz.plugin.bridge.spoolDir", a[8]);
            p.setProperty("org.quartz.plugin.bridge.exportFile", a[9]);
        }
        boolean props = Boolean.parseBoolean(a[7]);
        Scheduler s = new StdSchedulerFactory(p).getScheduler();
        s.clear();
        long now = System.currentTimeMillis();

        JobDataMap invoice = new JobDataMap();
        invoice.put("region", "us-east");
        invoice.put("batchSize", "500");
        invoice.put("label", "Zürich € = \\ \"x\"\n#not a comment");
        if (!props) {
            invoice.put("retries", Integer.valueOf(3));
            invoice.put("limit", Long.valueOf(10000000000L));
            invoice.put("dryRun", Boolean.FALSE);
            invoice.put("amount", new Money(1999, "EUR"));
        }
        JobDetail j1 = newJob(HarnessJob.class).withIdentity("invoice-run", "billing")
            .withDescription("nightly invoices").usingJobData(invoice).storeDurably().build();
        s.addJob(j1, false);
        s.scheduleJob(newTrigger().withIdentity("nightly", "billing").forJob(j1).withPriority(7)
            .withSchedule(cronSchedule("0 30 2 * * ?").inTimeZone(TimeZone.getTimeZone("America/New_York"))
                .withMisfireHandlingInstructionDoNothing())
            .usingJobData("batchSize", "250").build());
        s.scheduleJob(newTrigger().withIdentity("month-end", "billing").forJob(j1)
            .withSchedule(cronSchedule("0 0 18 ? * 6L").inTimeZone(TimeZone.getTimeZone("Europe/Berlin"))
                .withMisfireHandlingInstructionFireAndProceed())
            .endAt(new Date(utc("2030-01-01T00:00:00Z"))).build());

        s.scheduleJob(newJob(HarnessJob.class).withIdentity("heartbeat", "ops").build(),
            newTrigger().withIdentity("heartbeat", "ops").startAt(new Date(utc("2026-01-01T00:00:00Z")))
                .withSchedule(simpleSchedule().withIntervalInMinutes(15).repeatForever()).build());
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("batch", "ops").build(),
            newTrigger().withIdentity("batch", "ops").startAt(new Date(now + 3600_000L))
                .withSchedule(simpleSchedule().withIntervalInMinutes(90).withRepeatCount(10)
                    .withMisfireHandlingInstructionNextWithRemainingCount()).build());
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("catch-up", "ops").build(),
            newTrigger().withIdentity("catch-up", "ops").startAt(new Date(now - 7200_500L))
                .withSchedule(simpleSchedule().withIntervalInHours(1).withRepeatCount(5)
                    .withMisfireHandlingInstructionNowWithExistingCount()).build());
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("month-close", "reports").build(),
            newTrigger().withIdentity("month-close", "reports").startAt(new Date(utc("2026-01-31T00:00:00Z")))
                .withSchedule(calendarIntervalSchedule().withIntervalInMonths(1)
                    .inTimeZone(TimeZone.getTimeZone("Asia/Tokyo"))).build());
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("fortnight", "reports").build(),
            newTrigger().withIdentity("fortnight", "reports").startAt(new Date(utc("2026-01-05T14:00:00Z")))
                .withSchedule(calendarIntervalSchedule().withIntervalInWeeks(2)
                    .withMisfireHandlingInstructionDoNothing()).build());

        s.scheduleJob(newJob(HarnessJob.class).withIdentity("cleanup", "ops").build(),
            newTrigger().withIdentity("cleanup", "ops").withSchedule(cronSchedule("0 */5 * * * ?")).build());
        s.pauseTrigger(new TriggerKey("cleanup", "ops"));
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("ldap-sync", "frozen").build(),
            newTrigger().withIdentity("ldap-sync", "frozen").withSchedule(cronSchedule("0 0 * * * ?")).build());
        s.pauseTriggers(GroupMatcher.triggerGroupEquals("frozen"));

        HolidayCalendar holidays = new HolidayCalendar();
        holidays.addExcludedDate(new Date(utc("2026-12-25T12:00:00Z")));
        s.addCalendar("holidays", holidays, false, false);
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("payroll", "billing").build(),
            newTrigger().withIdentity("payroll", "billing").modifiedByCalendar("holidays")
                .withSchedule(cronSchedule("0 0 12 * * ?")).build());
        s.scheduleJob(newJob(HarnessJob.class).withIdentity("office-hours", "ops").build(),
            newTrigger().withIdentity("office-hours", "ops")
                .withSchedule(dailyTimeIntervalSchedule().withIntervalInMinutes(30)
                    .startingDailyAt(TimeOfDay.hourAndMinuteOfDay(9, 0))
                    .endingDailyAt(TimeOfDay.hourAndMinuteOfDay(17, 0))).build());
        s.addJob(newJob(HarnessJob.class).withIdentity("manual-export", "ops").storeDurably().build(), false);

        s.start();
        Thread.sleep(1500);  // start-up misfire recovery runs before the first acquisition
        if (a.length > 9) {
            java.nio.file.Path export = java.nio.file.Paths.get(a[9]);
            for (int i = 0; i < 600 && !java.nio.file.Files.exists(export); i++) {
                Thread.sleep(50);
            }
        }
        s.standby();
        List<TriggerKey> keys = new ArrayList<>(s.getTriggerKeys(GroupMatcher.anyTriggerGroup()));
        keys.sort(Comparator.comparing(TriggerKey::toString));
        for (TriggerKey k : keys) {
            Trigger t = s.getTrigger(k);
            StringBuilder sb = new StringBuilder();
            Date next = t.getNextFireTime();
            for (int i = 0; i < 6 && next != null; i++) {
                sb.append(i == 0 ? "" : ",").append(next.getTime());
                next = t.getFireTimeAfter(next);
            }
            System.out.println("T\t" + k.getGroup() + "." + k.getName() + "\t" + s.getTriggerState(k) + "\t" + sb);
        }
        s.shutdown(true);
    }
}
