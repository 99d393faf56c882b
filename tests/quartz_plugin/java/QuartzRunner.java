import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Properties;

import org.quartz.Scheduler;
import org.quartz.impl.StdSchedulerFactory;
import org.quartz.simpl.CascadingClassLoadHelper;
import org.quartz.xml.XMLSchedulingDataProcessor;

/** Test harness: run a Quartz scheduler configured by a properties file, with the jobs of the
 * job XML files named by the property "test.jobFiles" (comma-separated) loaded by Quartz's own
 * XMLSchedulingDataProcessor (Debian's quartz2.jar lacks quartz-jobs, which the
 * XMLSchedulingDataProcessorPlugin needs), until a stop file appears (or a time limit passes),
 * then shut it down waiting for running jobs. */
public class QuartzRunner {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        String stopFile = args[1];
        long limitMillis = Long.parseLong(args[2]) * 1000L;
        String files = (String) props.remove("test.jobFiles");
        Scheduler scheduler = new StdSchedulerFactory(props).getScheduler();
        CascadingClassLoadHelper clh = new CascadingClassLoadHelper();
        clh.initialize();
        for (String file : files.split(",")) {
            new XMLSchedulingDataProcessor(clh).processFileAndScheduleJobs(file.trim(), scheduler);
        }
        scheduler.start();
        System.out.println("started");
        System.out.flush();
        long deadline = System.currentTimeMillis() + limitMillis;
        while (!Files.exists(Paths.get(stopFile)) && System.currentTimeMillis() < deadline) {
            Thread.sleep(50);
        }
        scheduler.shutdown(true);
        System.out.println("stopped");
    }
}
