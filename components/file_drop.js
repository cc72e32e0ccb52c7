// A labelled file picker with drag and drop: a native <input type="file"> named by a visible <label>, so
// keyboards, screen readers and voice control reach it like any other field. Files are checked here for type and
// size first (the server checks again), then posted to the same route NiceGUI's own uploader uses.
export default {
  template: `
    <div
      class="r-drop"
      :class="{ 'r-drop--over': over, 'r-drop--busy': busy }"
      @dragenter.prevent="over = true"
      @dragover.prevent="over = true"
      @dragleave.prevent="over = false"
      @drop.prevent="dropped"
    >
      <input
        :id="inputId"
        ref="input"
        class="r-drop-input"
        type="file"
        :accept="accept"
        :disabled="busy"
        :aria-describedby="hintId"
        @change="picked"
      />
      <label :for="inputId" class="r-drop-label">
        <span class="material-icons r-drop-icon" aria-hidden="true">upload_file</span>
        <span class="r-drop-text">{{ busy ? busyLabel : label }}</span>
      </label>
      <span :id="hintId" class="r-drop-hint">{{ hint }}</span>
    </div>
  `,
  props: {
    url: String,
    label: String,
    hint: String,
    busyLabel: { type: String, default: "Uploading…" },
    accept: String,
    maxFileSize: Number,
  },
  data() {
    return { over: false, busy: false };
  },
  computed: {
    inputId() {
      return `r-drop-${this.$.uid}`;
    },
    hintId() {
      return `r-drop-hint-${this.$.uid}`;
    },
  },
  methods: {
    picked(event) {
      const file = event.target.files && event.target.files[0];
      event.target.value = ""; // choosing the same file again must fire "change" again
      if (file) this.send(file);
    },
    dropped(event) {
      this.over = false;
      const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
      if (file && !this.busy) this.send(file);
    },
    allowed(file) {
      const types = (this.accept || "").split(",").map((type) => type.trim()).filter(Boolean);
      return types.length === 0 || types.includes(file.type);
    },
    async send(file) {
      const facts = { name: file.name, type: file.type, size: file.size };
      if (!this.allowed(file)) return this.$emit("rejected", { ...facts, reason: "type" });
      if (this.maxFileSize && file.size > this.maxFileSize) return this.$emit("rejected", { ...facts, reason: "size" });
      const body = new FormData();
      body.append("file", file);
      this.busy = true;
      try {
        const url = (this.url.startsWith("/") ? window.path_prefix : "") + this.url;
        const response = await fetch(url, { method: "POST", body });
        if (!response.ok) this.$emit("failed", { ...facts, status: response.status });
      } catch (error) {
        this.$emit("failed", { ...facts, status: 0 });
      } finally {
        this.busy = false;
      }
    },
  },
};
