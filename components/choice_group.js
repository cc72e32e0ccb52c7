// A single choice among a few options, shown as a row of buttons: a radio group in the WAI-ARIA sense.
// One tab stop for the whole group (the chosen option); arrow keys, Home and End move and choose, as with native
// radio buttons. Quasar's button toggle makes every option a tab stop, which costs keyboard users dozens of stops.
const GROUP = `
  <div role="radiogroup" class="r-choices" :aria-label="label" @keydown="key">
    <button
      v-for="(option, index) in options"
      :key="String(option.value)"
      :ref="(element) => (buttons[index] = element)"
      type="button"
      role="radio"
      class="r-choice"
      :class="{ 'r-choice--on': index === chosen }"
      :aria-checked="index === chosen ? 'true' : 'false'"
      :tabindex="index === (chosen < 0 ? 0 : chosen) ? 0 : -1"
      :disabled="disable"
      @click="choose(index)"
    >{{ option.label }}</button>
  </div>`;

export default {
  // With a caption, the group and its visible heading are one element (the heading is hidden from screen readers,
  // which hear the group's label).
  template: `
    <div v-if="caption" class="r-choice-group" :class="{ 'r-choice-group--inline': inline }">
      <div class="r-field-label" aria-hidden="true">{{ caption }}</div>
      ${GROUP}
    </div>
    ${GROUP.replace("<div ", "<div v-else ")}
  `,
  props: {
    options: { type: Array, default: () => [] },
    modelValue: null,
    label: String,
    caption: String,
    inline: Boolean,
    disable: Boolean,
  },
  data() {
    return { buttons: [], pending: null };
  },
  computed: {
    chosen() {
      // The option just picked shows as chosen at once, before the server confirms it.
      const value = this.pending !== null ? this.pending : this.modelValue;
      return this.options.findIndex((option) => option.value === value);
    },
  },
  watch: {
    modelValue() {
      this.pending = null;
    },
  },
  methods: {
    choose(index) {
      const option = this.options[index];
      if (!option || index === this.chosen) return;
      this.pending = option.value;
      this.$emit("update:modelValue", option.value);
    },
    key(event) {
      const count = this.options.length;
      if (!count) return;
      const current = this.chosen < 0 ? 0 : this.chosen;
      const moves = { ArrowRight: current + 1, ArrowDown: current + 1, ArrowLeft: current - 1, ArrowUp: current - 1,
                      Home: 0, End: count - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = (moves[event.key] + count) % count;
      this.choose(next);
      this.$nextTick(() => this.buttons[next] && this.buttons[next].focus());
    },
  },
};
