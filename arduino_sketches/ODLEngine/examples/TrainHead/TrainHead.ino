// TrainHead: the ODLEngine API in one sketch. Real basic_motions windows (example_windows.h)
// go through the frozen backbone, a class is added at run time, the head trains with SGD,
// and the weights are saved to the internal flash (two slots, CRC-checked) and loaded back.
// Regenerate the headers with extras/make_example_data.py.
#include <ODLEngine.h>

#include "odl_model_data.h"
#include "example_windows.h"

static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 64> engine;
#if defined(ARDUINO_ARCH_MBED)
static odl::FlashIAPStorage storage;  // last 2 x 8 KB of the nRF52840's flash
#else
static odl::RamStorage<8192> storage;
#endif

static uint32_t clock_us() { return micros(); }

static bool on_epoch(const odl::EpochResult& r, void*) {
  Serial.print("epoch ");
  Serial.print(r.epoch);
  Serial.print(" loss ");
  Serial.print(r.loss, 4);
  Serial.print(" accuracy ");
  Serial.println(r.accuracy, 3);
  return true;
}

static void report(const char* what, int status) {
  Serial.print(what);
  Serial.print(": ");
  Serial.println(odl::status_str(status));
}

void setup() {
  Serial.begin(115200);
  while (!Serial && millis() < 3000) {
  }
  engine.set_clock(clock_us);
  report("begin", engine.begin(kOdlModel));
  const int added = engine.add_class(kExampleNewClass);
  report("add_class", added < 0 ? added : odl::kOk);
  for (int i = 0; i < EXAMPLE_COUNT; ++i) engine.add_window(kExampleWindows[i], kExampleLabels[i]);
  Serial.print("backbone forward us: ");
  Serial.println(engine.stats().last_forward_us);

  odl::TrainConfig cfg;
  cfg.epochs = 20;
  cfg.batch_size = 4;
  cfg.lr = 3e-3f;  // features of windows in g and deg/s (tests/test_engine.py runs this configuration)
  cfg.momentum = 0.9f;
  report("train", engine.train(cfg, on_epoch, nullptr));
  Serial.print("train us: ");
  Serial.println(engine.stats().last_train_us);

  odl::EvalResult ev;
  report("evaluate", engine.evaluate(&ev));
  Serial.print("accuracy on the stored samples: ");
  Serial.println(ev.accuracy, 3);

#if defined(ARDUINO_ARCH_MBED)
  if (!storage.begin()) {
    Serial.print("flash: ");
    Serial.println(storage.error());
  }
#endif
  report("save", engine.save(storage));
  engine.reset();
  report("load", engine.load(storage));
  Serial.print("engine RAM bytes: ");
  Serial.println(engine.stats().engine_bytes);
}

void loop() {
  odl::Prediction p;
  static int i = 0;
  if (engine.predict(kExampleWindows[i], &p) == odl::kOk) {
    Serial.print("window ");
    Serial.print(i);
    Serial.print(" -> ");
    Serial.print(engine.class_name(p.label));
    Serial.print(" (");
    Serial.print(p.confidence, 2);
    Serial.println(")");
  }
  i = (i + 1) % EXAMPLE_COUNT;
  delay(1000);
}
